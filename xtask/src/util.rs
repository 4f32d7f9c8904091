//! Running commands: print them, run them, and on failure say how to reproduce.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

/// The repository root (the parent of this crate's directory).
pub(crate) fn root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// Cargo's target directory: `CARGO_TARGET_DIR` (relative to the root if relative), else
/// `target/` at the root.
pub(crate) fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => root().join(dir),
        _ => root().join("target"),
    }
}

/// Builds the test frontend's binary `bin` (`virtiofs-load`, `virtiofs-hostile`) in release
/// mode.
pub(crate) fn build_frontend_bin(bin: &str) -> anyhow::Result<()> {
    let mut cmd = cargo();
    cmd.args([
        "build",
        "--locked",
        "--release",
        "-p",
        "virtiofs-frontend",
        "--bin",
        bin,
    ]);
    run(cmd)
}

/// The cargo that runs us, so that toolchain overrides carry through.
pub(crate) fn cargo() -> Command {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(root());
    cmd
}

/// A command for `program` run from the repository root.
pub(crate) fn cmd(program: impl AsRef<OsStr>) -> Command {
    let mut cmd = Command::new(program);
    cmd.current_dir(root());
    cmd
}

/// Renders a command the way a person would type it.
pub(crate) fn display(cmd: &Command) -> String {
    let mut parts: Vec<String> = cmd
        .get_envs()
        .filter_map(|(k, v)| v.map(|v| format!("{}={}", k.to_string_lossy(), v.to_string_lossy())))
        .collect();
    parts.push(cmd.get_program().to_string_lossy().into_owned());
    parts.extend(cmd.get_args().map(|a| a.to_string_lossy().into_owned()));
    parts.join(" ")
}

/// Runs `cmd` in the foreground; an error names the command to reproduce the failure.
pub(crate) fn run(mut cmd: Command) -> Result<()> {
    let shown = display(&cmd);
    println!("$ {shown}");
    let status = cmd
        .status()
        .with_context(|| format!("failed to start `{shown}`"))?;
    if !status.success() {
        bail!("`{shown}` failed ({status}); run it again to reproduce");
    }
    Ok(())
}

/// A titled CI step.
pub(crate) fn step(title: &str) {
    println!("\n==> {title}");
}
