//! `cargo xtask fuzz`: the cargo-fuzz targets in `fuzz/` (a crate outside the workspace, built
//! with nightly and libFuzzer).
//!
//! `--smoke` runs every target in `fuzz/fuzz_targets` for a short time; it is a CI step. Needs
//! `cargo-fuzz` (`cargo install cargo-fuzz`; `.ci/run` installs it) and a nightly toolchain.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};

use crate::args::{Arg, Parser};
use crate::util::{self, step};

const USAGE: &str = "\
usage: cargo xtask fuzz [--smoke] [TARGET] [--time SECS]

Runs cargo-fuzz targets from fuzz/fuzz_targets (nightly, libFuzzer).
  --smoke      every target for 20 s each (what CI runs)
  TARGET       only this target (default: every target)
  --time SECS  seconds per target (default: 20 with --smoke, 300 otherwise)
Corpora are kept in fuzz/corpus/TARGET, crashes in fuzz/artifacts/TARGET (both ignored by git).
";

/// Seconds per target in CI.
const SMOKE_SECS: u64 = 20;

fn fuzz_dir() -> PathBuf {
    util::root().join("fuzz")
}

/// Every target: the file stems in `fuzz/fuzz_targets`, sorted.
fn targets() -> Result<Vec<String>> {
    let dir = fuzz_dir().join("fuzz_targets");
    let mut names = Vec::new();
    for entry in std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "rs") {
            if let Some(stem) = path.file_stem() {
                names.push(stem.to_string_lossy().into_owned());
            }
        }
    }
    names.sort();
    if names.is_empty() {
        bail!("no fuzz targets in {}", dir.display());
    }
    Ok(names)
}

/// `cargo +nightly fuzz ...` from `fuzz/`, through the rustup proxy (the `+nightly` needs it).
fn cargo_fuzz() -> std::process::Command {
    let mut cmd = util::cmd("cargo");
    cmd.current_dir(fuzz_dir());
    // The stable toolchain that runs xtask must not leak into the nightly build.
    for var in [
        "CARGO",
        "RUSTUP_TOOLCHAIN",
        "RUSTC",
        "RUSTDOC",
        "CARGO_TARGET_DIR",
    ] {
        cmd.env_remove(var);
    }
    cmd.args(["+nightly", "fuzz"]);
    cmd
}

fn check_tools() -> Result<()> {
    let mut cmd = cargo_fuzz();
    cmd.arg("--version");
    let ok = cmd.output().map(|o| o.status.success()).unwrap_or(false);
    if !ok {
        bail!(
            "`cargo +nightly fuzz` is not available: install a nightly toolchain \
             (`rustup toolchain install nightly`) and cargo-fuzz (`cargo install cargo-fuzz`)"
        );
    }
    Ok(())
}

/// Runs every target for the CI smoke time.
pub(crate) fn smoke() -> Result<()> {
    run(&["--smoke".to_owned()])
}

pub(crate) fn run(args: &[String]) -> Result<()> {
    let mut smoke = false;
    let mut secs = None;
    let mut only = None;
    let mut p = Parser::new(USAGE, args);
    while let Some(arg) = p.next()? {
        match arg {
            Arg::Long("smoke") => smoke = true,
            Arg::Long("time") => secs = Some(p.parse::<u64>()?),
            Arg::Value(target) if only.is_none() => only = Some(target.to_owned()),
            other => return Err(p.unexpected(other)),
        }
    }
    let secs = secs.unwrap_or(if smoke { SMOKE_SECS } else { 300 });
    let all = targets()?;
    let chosen = match only {
        Some(t) if all.contains(&t) => vec![t],
        Some(t) => bail!("no fuzz target `{t}`; the targets are: {}", all.join(", ")),
        None => all,
    };
    check_tools()?;
    for target in &chosen {
        step(&format!("fuzz {target} for {secs} s"));
        let mut cmd = cargo_fuzz();
        cmd.args(["run", target, "--"]);
        cmd.arg(format!("-max_total_time={secs}"));
        cmd.args(["-timeout=10", "-rss_limit_mb=2048", "-print_final_stats=1"]);
        util::run(cmd)?;
    }
    Ok(())
}
