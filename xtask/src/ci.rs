//! `cargo xtask ci`: everything CI runs, in order, stopping at the first failure.

use anyhow::Result;

use crate::util::{self, cargo, step};

pub(crate) fn run_ci() -> Result<()> {
    step("formatting");
    let mut fmt = cargo();
    fmt.args(["fmt", "--all", "--", "--check"]);
    util::run(fmt)?;

    step("clippy");
    let mut clippy = cargo();
    clippy.args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]);
    util::run(clippy)?;

    step("rustdoc");
    let mut doc = cargo();
    doc.args(["doc", "--workspace", "--no-deps"])
        .env("RUSTDOCFLAGS", "-D warnings");
    util::run(doc)?;

    step("tests");
    let mut test = cargo();
    test.args(["test", "--workspace"]);
    util::run(test)?;
    Ok(())
}

pub(crate) fn run(args: &[String]) -> Result<()> {
    if let Some(extra) = args.first() {
        anyhow::bail!("`cargo xtask ci` takes no arguments (got `{extra}`)");
    }
    run_ci()
}
