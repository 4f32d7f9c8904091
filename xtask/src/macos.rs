//! `cargo xtask check-macos`: type-check and lint the crates a macOS VMM embeds, for the Apple
//! targets, on Linux.
//!
//! rustup cannot fetch the Apple targets' standard library here, so this command uses Debian's
//! own Rust toolchain, which ships the standard library's sources: `rustc-web`, `cargo-web`,
//! `libstd-rust-web-dev` (with its versioned `libstd-rust-web-<ver>`), `rust-web-src` and
//! `rust-web-clippy` (`cargo-clippy` and `clippy-driver` of the same version), plus whatever
//! shared libraries they need that the machine lacks (e.g. `libllvm<N>`). They are fetched with
//! `apt-get download`, through the machine's own apt sources, and extracted privately with
//! `dpkg-deb -x` into `.cache/macos-toolchain/root/`; nothing is installed.
//! `cargo clippy -Zbuild-std=core,std --target <target> -- -D warnings` with
//! `RUSTC_BOOTSTRAP=1` then rebuilds `core`/`std` for the target from those sources and
//! type-checks and lints each entry of [`CHECKS`] against the `libc` crate's real Darwin
//! definitions (and, for `aarch64-unknown-linux-gnu`, its aarch64 Linux ones): a Linux-only item
//! (`libc::umount2`, `vmm_sys_util::epoll`, a vhost crate) used outside its `cfg` is an error,
//! and so is any warning. Linking is impossible (no Apple linker or SDK), so it is a check
//! only; `const` assertions in the checked crates (e.g. passthrough-macos's Darwin constant
//! table against `libc`) are evaluated by it.
//!
//! Provisioning is idempotent: a complete toolchain is marked by a stamp file and reused; a
//! broken or partial one is removed and fetched again. The check's own target directory is
//! `.cache/macos-toolchain/target/`.

use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};

use crate::args::{Arg, Parser};
use crate::util::{self, display, step};

/// The Apple targets.
const APPLE: &[&str] = &["aarch64-apple-darwin", "x86_64-apple-darwin"];

/// One package checked: the `cargo clippy` arguments that select what a macOS user builds, and
/// the targets it is checked for.
#[derive(Debug)]
pub(crate) struct Check {
    /// The package.
    pub(crate) package: &'static str,
    /// Feature and target selection.
    pub(crate) args: &'static [&'static str],
    /// The targets.
    pub(crate) targets: &'static [&'static str],
}

/// What a macOS VMM embeds: the macOS backend (also for aarch64 Linux, where it asserts its
/// aarch64 guest open-flag values against `libc`; the x86_64 ones are asserted by every build on
/// this x86_64 machine), the transport with its default features (`dev-fuse` is Linux-only and
/// must compile out), and the device library without the daemon, with its examples.
pub(crate) const CHECKS: &[Check] = &[
    Check {
        package: "passthrough-macos",
        args: &[],
        targets: &[
            "aarch64-apple-darwin",
            "x86_64-apple-darwin",
            "aarch64-unknown-linux-gnu",
        ],
    },
    Check {
        package: "virtiofs-transport",
        args: &[],
        targets: APPLE,
    },
    Check {
        package: "virtiofs-device",
        args: &["--no-default-features", "--lib", "--examples"],
        targets: APPLE,
    },
];

/// Every target some check is run for, in order.
fn all_targets() -> Vec<&'static str> {
    let mut targets: Vec<&'static str> = Vec::new();
    for target in CHECKS.iter().flat_map(|c| c.targets) {
        if !targets.contains(target) {
            targets.push(target);
        }
    }
    targets
}

/// The Debian packages asked of apt; apt adds the versioned std package and missing libraries.
const DEBIAN_PACKAGES: &[&str] = &["rustc-web", "cargo-web", "rust-web-src", "rust-web-clippy"];

/// The standard library crates rebuilt for the target.
const BUILD_STD: &str = "-Zbuild-std=core,std";

/// Written into the extracted tree once it is complete: the packages it holds, one a line.
const STAMP: &str = ".xtask-provisioned";

const USAGE: &str = "\
usage: cargo xtask check-macos [--target TARGET]... [-p PACKAGE]... [--provision-only]

Type-checks and lints (clippy, -D warnings) the crates a macOS VMM embeds for the Apple
targets with Debian's Rust toolchain and its std sources (downloaded once with apt-get into
.cache/macos-toolchain/; nothing is installed).

  --target TARGET    check only this target (default: every target of every package:
                     aarch64-apple-darwin, x86_64-apple-darwin, and aarch64-unknown-linux-gnu
                     for passthrough-macos)
  -p, --package P    check only this package (default: passthrough-macos, virtiofs-transport,
                     virtiofs-device without its daemon)
  --provision-only   fetch and extract the toolchain, then stop
";

/// `cargo xtask check-macos [--target T]... [-p P]... [--provision-only]`.
pub(crate) fn run(args: &[String]) -> Result<()> {
    let mut targets: Vec<String> = Vec::new();
    let mut packages: Vec<String> = Vec::new();
    let mut provision_only = false;
    let mut p = Parser::new(USAGE, args);
    while let Some(arg) = p.next()? {
        match arg {
            Arg::Long("target") => targets.push(p.string()?),
            Arg::Short('p') | Arg::Long("package") => packages.push(p.string()?),
            Arg::Long("provision-only") => provision_only = true,
            other => return Err(p.unexpected(other)),
        }
    }
    if targets.is_empty() && packages.is_empty() && !provision_only {
        return run_all();
    }
    let toolchain = Toolchain::provision()?;
    if provision_only {
        return Ok(());
    }
    let targets: Vec<&str> = if targets.is_empty() {
        all_targets()
    } else {
        targets.iter().map(String::as_str).collect()
    };
    let checks: Vec<(&str, &[&str])> = if packages.is_empty() {
        CHECKS.iter().map(|c| (c.package, c.args)).collect()
    } else {
        packages
            .iter()
            .map(|p| {
                let args = CHECKS
                    .iter()
                    .find(|c| c.package == p)
                    .map_or(&[][..], |c| c.args);
                (p.as_str(), args)
            })
            .collect()
    };
    for target in targets {
        for &(package, args) in &checks {
            toolchain.clippy(target, package, args)?;
        }
    }
    Ok(())
}

/// The CI step: every check of [`CHECKS`] for each of its targets.
pub(crate) fn run_all() -> Result<()> {
    let toolchain = Toolchain::provision()?;
    let started = Instant::now();
    for target in all_targets() {
        for check in CHECKS.iter().filter(|c| c.targets.contains(&target)) {
            toolchain.clippy(target, check.package, check.args)?;
        }
    }
    println!(
        "check-macos: {} checks passed in {:.1} s",
        CHECKS.iter().map(|c| c.targets.len()).sum::<usize>(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The cache directory: `.cache/macos-toolchain/` at the repository root.
fn cache_dir() -> PathBuf {
    util::root().join(".cache").join("macos-toolchain")
}

/// An extracted Debian Rust toolchain.
#[derive(Debug)]
struct Toolchain {
    /// The extracted file system tree (`usr/bin/cargo`, `usr/lib/rustlib/src/rust`, ...).
    root: PathBuf,
}

impl Toolchain {
    /// The cached toolchain if it is complete, or else a freshly fetched one.
    fn provision() -> Result<Self> {
        step("Debian Rust toolchain with std sources (cached in .cache/macos-toolchain/)");
        let cache = cache_dir();
        let toolchain = Self {
            root: cache.join("root"),
        };
        if toolchain.root.join(STAMP).is_file() && toolchain.is_complete() {
            println!("cached: {}", toolchain.root.display());
        } else {
            fetch(&cache, &toolchain.root)?;
        }
        // Also proves that the extracted binaries find their shared libraries.
        let mut version = toolchain.command(&toolchain.rustc());
        version.arg("--version");
        let shown = display(&version);
        let out = version
            .output()
            .with_context(|| format!("failed to start `{shown}`"))?;
        if !out.status.success() {
            bail!(
                "`{shown}` failed ({}): {}\nremove {} and run again to fetch the toolchain anew",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim(),
                toolchain.root.display()
            );
        }
        println!("{}", String::from_utf8_lossy(&out.stdout).trim());
        Ok(toolchain)
    }

    /// Whether the files this command uses are present.
    fn is_complete(&self) -> bool {
        self.rustc().is_file()
            && self.cargo().is_file()
            && self.cargo_clippy().is_file()
            && self.root.join("usr/bin/clippy-driver").is_file()
            && self.std_sources().join("library/std/Cargo.toml").is_file()
    }

    fn rustc(&self) -> PathBuf {
        self.root.join("usr/bin/rustc")
    }

    fn cargo(&self) -> PathBuf {
        self.root.join("usr/bin/cargo")
    }

    fn cargo_clippy(&self) -> PathBuf {
        self.root.join("usr/bin/cargo-clippy")
    }

    fn std_sources(&self) -> PathBuf {
        self.root.join("usr/lib/rustlib/src/rust")
    }

    /// The extracted shared library directories (`usr/lib/<multiarch>` and `lib/<multiarch>`:
    /// bookworm's libpcre3 still ships in `/lib`), for `LD_LIBRARY_PATH`.
    fn library_path(&self) -> Result<OsString> {
        let mut dirs = Vec::new();
        for lib in [self.root.join("usr/lib"), self.root.join("lib")] {
            if !lib.is_dir() {
                continue;
            }
            let entries =
                fs::read_dir(&lib).with_context(|| format!("cannot list {}", lib.display()))?;
            dirs.extend(
                entries
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| {
                        p.is_dir()
                            && p.file_name()
                                .is_some_and(|n| n.to_string_lossy().contains("-linux-"))
                    }),
            );
        }
        dirs.sort();
        // Not the inherited value: under `cargo run` it points into the rustup toolchain.
        std::env::join_paths(dirs).context("cannot build LD_LIBRARY_PATH")
    }

    /// A command running `program` of this toolchain, from the repository root.
    fn command(&self, program: &Path) -> Command {
        let mut cmd = util::cmd(program);
        if let Ok(path) = self.library_path() {
            cmd.env("LD_LIBRARY_PATH", path);
        }
        cmd
    }

    /// `cargo clippy` of `package` (with `args`) for `target`, every warning an error.
    fn clippy(&self, target: &str, package: &str, args: &[&str]) -> Result<()> {
        let shown_args = if args.is_empty() {
            String::new()
        } else {
            format!(" {}", args.join(" "))
        };
        step(&format!(
            "clippy {package}{shown_args} for {target} (Debian toolchain, build-std)"
        ));
        let started = Instant::now();
        // `cargo-clippy` runs `$CARGO check` with its `clippy-driver` (found beside it) as the
        // workspace members' compiler wrapper; the standard library is built by plain rustc.
        let mut cmd = self.command(&self.cargo_clippy());
        cmd.env("RUSTC_BOOTSTRAP", "1")
            .env("CARGO", self.cargo())
            .env("RUSTC", self.rustc())
            .env("CARGO_TARGET_DIR", cache_dir().join("target"));
        // Settings meant for the rustup toolchain must not reach this one.
        for var in [
            "RUSTFLAGS",
            "CARGO_ENCODED_RUSTFLAGS",
            "RUSTC_WRAPPER",
            "RUSTC_WORKSPACE_WRAPPER",
            "CARGO_BUILD_TARGET",
            "CARGO_BUILD_RUSTC",
            "RUSTDOC",
            "RUSTUP_TOOLCHAIN",
            "CLIPPY_ARGS",
            "CLIPPY_CONF_DIR",
        ] {
            cmd.env_remove(var);
        }
        cmd.args(["clippy", "--locked", BUILD_STD, "--target", target])
            .args(["--package", package])
            .args(args)
            .args(["--", "-D", "warnings"]);
        util::run(cmd)?;
        println!(
            "{target}: {package}: clippy passed in {:.1} s",
            started.elapsed().as_secs_f64()
        );
        Ok(())
    }
}

/// Downloads the toolchain's packages into `cache/debs/` and extracts them into `root`.
fn fetch(cache: &Path, root: &Path) -> Result<()> {
    let started = Instant::now();
    let debs = cache.join("debs");
    let partial = cache.join("root.partial");
    for dir in [debs.as_path(), partial.as_path(), root] {
        if dir.exists() {
            fs::remove_dir_all(dir).with_context(|| format!("cannot remove {}", dir.display()))?;
        }
    }
    fs::create_dir_all(&debs).with_context(|| format!("cannot create {}", debs.display()))?;

    let wanted = packages_to_fetch()?;
    let mut download = util::cmd("apt-get");
    download.current_dir(&debs).args(["download", "-q"]);
    for (name, version) in &wanted {
        download.arg(format!("{name}={version}"));
    }
    util::run(download).context(
        "downloading the toolchain failed; if apt reports 404, the machine's package lists \
         are stale (`apt-get update` refreshes them)",
    )?;

    let mut files: Vec<PathBuf> = fs::read_dir(&debs)
        .with_context(|| format!("cannot list {}", debs.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "deb"))
        .collect();
    files.sort();
    if files.len() != wanted.len() {
        bail!(
            "expected {} packages in {}, found {}",
            wanted.len(),
            debs.display(),
            files.len()
        );
    }
    println!(
        "extracting {} packages into {} (dpkg-deb -x)",
        files.len(),
        root.display()
    );
    for file in &files {
        let mut extract = util::cmd("dpkg-deb");
        extract.arg("-x").arg(file).arg(&partial);
        let shown = display(&extract);
        let status = extract
            .status()
            .with_context(|| format!("failed to start `{shown}`"))?;
        if !status.success() {
            bail!("`{shown}` failed ({status}); run it again to reproduce");
        }
    }
    let stamp: String = wanted
        .iter()
        .map(|(name, version)| format!("{name} {version}\n"))
        .collect();
    fs::write(partial.join(STAMP), stamp).context("cannot write the stamp file")?;
    fs::rename(&partial, root)
        .with_context(|| format!("cannot rename {} to {}", partial.display(), root.display()))?;
    // The tree is what is kept; the archives are not needed any more.
    fs::remove_dir_all(&debs).with_context(|| format!("cannot remove {}", debs.display()))?;
    println!(
        "toolchain ready in {:.1} s: {}",
        started.elapsed().as_secs_f64(),
        root.display()
    );
    Ok(())
}

/// `(package, version)` of everything a private toolchain needs that the machine lacks, as
/// apt's own resolver says (a simulated install: needs no privileges and changes nothing).
fn packages_to_fetch() -> Result<Vec<(String, String)>> {
    let mut simulate = util::cmd("apt-get");
    simulate
        .args([
            "--simulate",
            "--quiet",
            "--no-install-recommends",
            "install",
        ])
        .args(DEBIAN_PACKAGES);
    let shown = display(&simulate);
    println!("$ {shown}");
    let out = simulate
        .output()
        .with_context(|| format!("failed to start `{shown}` (is this Debian?)"))?;
    if !out.status.success() {
        bail!(
            "`{shown}` failed ({}): {}\nrun it again to reproduce (if apt cannot locate the \
             packages, the machine's package lists are missing or stale: `apt-get update`)",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let wanted = parse_simulated_installs(&String::from_utf8_lossy(&out.stdout));
    for required in DEBIAN_PACKAGES {
        if !wanted.iter().any(|(name, _)| name == required) {
            bail!(
                "`{shown}` would not install `{required}`: it is installed system-wide or \
                 unavailable (`apt-cache policy {required}`); this command needs the package \
                 available and not installed"
            );
        }
    }
    for (name, version) in &wanted {
        println!("  {name} {version}");
    }
    Ok(wanted)
}

/// The `Inst <name> [<old version>] (<version> <suite> [<arch>])` lines of `apt-get -s`.
fn parse_simulated_installs(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|line| {
            let rest = line.strip_prefix("Inst ")?;
            let (name, rest) = rest.split_once(' ')?;
            let (_, rest) = rest.split_once('(')?;
            let version = rest.split_whitespace().next()?;
            Some((name.to_owned(), version.to_owned()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::parse_simulated_installs;

    #[test]
    fn simulated_installs() {
        let text = "\
Reading package lists...
The following NEW packages will be installed:
  cargo-web libllvm22
Inst libllvm22 (1:22.1.8-1~deb12u1 Debian-Security:12/oldstable-security [amd64])
Inst libssl3 [3.0.15-1~deb12u1] (3.0.17-1~deb12u2 Debian-Security:12/oldstable-security [amd64])
Conf libllvm22 (1:22.1.8-1~deb12u1 Debian-Security:12/oldstable-security [amd64])
Inst rust-web-src (1.96.0+dfsg1-1~deb12u2 Debian-Security:12/oldstable-security [all])
";
        assert_eq!(
            parse_simulated_installs(text),
            [
                ("libllvm22", "1:22.1.8-1~deb12u1"),
                ("libssl3", "3.0.17-1~deb12u2"),
                ("rust-web-src", "1.96.0+dfsg1-1~deb12u2"),
            ]
            .map(|(n, v)| (n.to_owned(), v.to_owned()))
        );
    }
}
