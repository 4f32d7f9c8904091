//! The project's one front door: `cargo xtask <command>`.
//!
//! Every step prints the command it runs, and a failing step names the command that reproduces
//! it. CI (`.ci/run`) calls `cargo xtask ci` and nothing else.

mod args;
mod bench;
mod ci;
mod daemon_proc;
mod demo;
mod e2e;
mod fstests;
mod fuzz;
mod guest_boot;
mod guest_root;
mod host_tier;
mod hostile;
mod layout;
mod macos;
mod provision;
mod tidy;
mod util;

use anyhow::{Result, bail};

const USAGE: &str = "\
usage: cargo xtask <command> [options]

commands:
  bench         criterion benches: bench [CRATE] [--baseline NAME]
  ci            everything CI runs, in CI order (fmt, clippy, doc, tests, ...)
  demo          a Linux guest with a host directory at /mnt: demo [--shared-dir D]
  e2e           real Linux guests (QEMU TCG) mount the share over virtio-fs
  fstests       fstests (xfstests) in a Debian guest root: fstests [--group G] [--tests L]
                [--daemon ours|virtiofsd[,...]] [--kernel K]
  host-tier     the daemon's --fuse-mount on the host kernel: pjdfstest, fsx [--fsx-ops N]
  hostile       a raw vhost-user frontend as a hostile guest vs the release daemon (root)
  fuzz          cargo-fuzz targets: fuzz [--smoke] [TARGET] [--time SECS]
  layout        fuse-abi layouts vs C linux/fuse.h (system + newest Debian header)
  check-macos   type-check and lint the macOS embedding crates for Apple targets (Debian toolchain)
  tidy          the house rules over the sources (unsafe only in sys modules, ...)
  help          this text
";

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((command, rest)) = args.split_first() else {
        print!("{USAGE}");
        bail!("no command given");
    };
    match command.as_str() {
        "bench" => bench::run(rest),
        "ci" => ci::run(rest),
        "demo" => demo::run(rest),
        "e2e" => e2e::run(rest),
        "fstests" => fstests::run(rest),
        "fuzz" => fuzz::run(rest),
        "host-tier" => host_tier::run(rest),
        "hostile" => hostile::run(rest),
        "layout" => layout::run(rest),
        "check-macos" => macos::run(rest),
        "tidy" => {
            args::none(
                "usage: cargo xtask tidy\n\nThe house rules over the sources.\n",
                rest,
            )?;
            tidy::run()
        }
        "help" | "--help" | "-h" => {
            print!("{USAGE}");
            Ok(())
        }
        other => {
            print!("{USAGE}");
            bail!("unknown command `{other}`")
        }
    }
}
