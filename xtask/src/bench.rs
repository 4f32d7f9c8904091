//! `cargo xtask bench [CRATE] [--baseline NAME] [-- CRITERION-ARGS]`: the criterion benches.
//!
//! CRATE is a workspace package (`virtiofs-transport`) or its short name (`transport`); without
//! it, every package's benches run. Criterion prints each case's figures (time per iteration,
//! throughput where set); reports are kept under `target/criterion/`.

use anyhow::{Result, bail};

use crate::util::{self, cargo};

const USAGE: &str = "\
usage: cargo xtask bench [CRATE] [--baseline NAME] [--save-baseline NAME] [-- CRITERION-ARGS]

  CRATE                 a package (virtiofs-transport) or its short name (transport)
  --baseline NAME       compare against a saved criterion baseline
  --save-baseline NAME  save this run as baseline NAME
";

/// The package a CRATE argument names: the exact name, or `fuse-*`/`virtiofs-*`/
/// `passthrough-*` plus the short name.
fn package(name: &str) -> Result<String> {
    let members = std::fs::read_to_string(util::root().join("Cargo.toml"))?;
    let candidates = [
        name.to_owned(),
        format!("virtiofs-{name}"),
        format!("fuse-{name}"),
        format!("passthrough-{name}"),
    ];
    for c in candidates {
        if members.contains(&format!("\"{c}\"")) {
            return Ok(c);
        }
    }
    bail!("no workspace package named `{name}`\n{USAGE}")
}

/// `cargo xtask bench ...`.
pub(crate) fn run(args: &[String]) -> Result<()> {
    let mut package_arg = None;
    let mut criterion: Vec<String> = Vec::new();
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "-h" | "--help" => {
                print!("{USAGE}");
                return Ok(());
            }
            "--" => {
                criterion.extend(args.by_ref().cloned());
            }
            flag @ ("--baseline" | "--save-baseline") => {
                let Some(name) = args.next() else {
                    bail!("`{flag}` needs a name\n{USAGE}");
                };
                criterion.extend([flag.to_owned(), name.clone()]);
            }
            other if other.starts_with('-') => bail!("unknown option `{other}`\n{USAGE}"),
            other if package_arg.is_none() => package_arg = Some(package(other)?),
            other => bail!("unexpected argument `{other}`\n{USAGE}"),
        }
    }
    util::step(&format!(
        "bench {}",
        package_arg.as_deref().unwrap_or("(workspace)")
    ));
    let mut cmd = cargo();
    cmd.arg("bench");
    match &package_arg {
        Some(p) => cmd.args(["--package", p]),
        None => cmd.arg("--workspace"),
    };
    cmd.arg("--benches");
    if !criterion.is_empty() {
        cmd.arg("--").args(&criterion);
    }
    util::run(cmd)
}
