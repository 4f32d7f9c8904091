//! `cargo xtask hostile`: the hostile tier. The project's own raw vhost-user frontend
//! (`virtiofs-frontend`'s `virtiofs-hostile` binary) drives the release daemon as a hostile
//! guest would — malformed chains, impossible ring indices, special files, budget exhaustion,
//! log floods — on `--backend linux` and `--backend macos-logic`, and fails on an escape, a
//! death, a hang, or unbounded CPU, memory or log growth.
//!
//! Builds `virtiofs-device` and `virtiofs-hostile` (release), then runs the scenarios; each
//! gets a fresh daemon and share. Needs root (device nodes, loop devices). Every scenario is
//! bounded in count and time; the whole tier takes about a minute.

use std::path::PathBuf;

use anyhow::Result;

use crate::args::{Arg, Parser};
use crate::util::{self, cargo};

const USAGE: &str = "\
usage: cargo xtask hostile [--backend linux|macos-logic]... [--scenario NAME]...
                           [--daemon-arg ARG]... [--daemon PATH] [--work-dir DIR] [--list]

Drives the release virtiofs-device daemon with the project's raw vhost-user frontend as a
hostile guest (needs root). Each scenario prints PASS/FAIL with its figures.
  --backend B        test this --backend (repeatable; default: linux and macos-logic)
  --scenario NAME    run only these scenarios (repeatable; --list shows them)
  --daemon-arg ARG   pass one more argument to the daemon (repeatable, e.g. --sandbox)
  --daemon PATH      test this daemon binary instead of building virtiofs-device
  --work-dir DIR     keep shares and daemon logs in DIR (default: a temporary directory)
  --list             list the scenarios
";

/// The CI step: every scenario on both backends, default daemon arguments.
pub(crate) fn run_ci() -> Result<()> {
    run(&[])
}

/// `cargo xtask hostile [...]`.
pub(crate) fn run(args: &[String]) -> Result<()> {
    let mut daemon: Option<PathBuf> = None;
    let mut pass: Vec<String> = Vec::new();
    let mut list = false;
    let mut p = Parser::new(USAGE, args);
    while let Some(arg) = p.next()? {
        match arg {
            Arg::Long(flag @ ("backend" | "scenario" | "daemon-arg" | "work-dir")) => {
                pass.push(format!("--{flag}"));
                pass.push(p.string()?);
            }
            Arg::Long("daemon") => daemon = Some(PathBuf::from(p.value()?)),
            Arg::Long("list") => list = true,
            other => return Err(p.unexpected(other)),
        }
    }
    let release = util::target_dir().join("release");
    let daemon = match daemon {
        Some(path) => path,
        None if list => PathBuf::from("virtiofs-device"),
        None => {
            let mut build = cargo();
            build.args(["build", "--locked", "--release", "-p", "virtiofs-device"]);
            util::run(build)?;
            release.join("virtiofs-device")
        }
    };
    util::build_frontend_bin("virtiofs-hostile")?;
    let mut hostile = util::cmd(release.join("virtiofs-hostile"));
    hostile.arg("--daemon").arg(&daemon).args(&pass);
    if list {
        hostile.arg("--list");
    }
    util::run(hostile)
}
