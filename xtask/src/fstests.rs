//! `cargo xtask fstests`: fstests (xfstests) in real guests, `FSTYP=virtiofs`, against our
//! daemon or virtiofsd (the same guest, kernel and tests, so the two can be compared).
//!
//! For each kernel and daemon: the Debian guest root ([`crate::guest_root`]) boots over
//! virtio-blk (`snapshot=on`: the image is never written), two daemon instances serve the
//! TEST and SCRATCH shares (`<run>/test`, `<run>/scratch`, each the root of a 16 GiB ext4
//! filesystem of its own, [`volume`]), the guest's
//! `xtask/guest-root/run-fstests` runs `./check -virtiofs` and prints one `FSTESTS-TEST` line
//! per test, copies `results/` onto the TEST share and powers off. The host copies it to
//! `<run>/results`, where `<run>` is `<cache>/fstests/<kernel>-<daemon>/` (with console.log,
//! daemon-test.log, daemon-scratch.log, qemu.log and table.txt), kept until the next run.
//!
//! A failure counts against our daemon unless `xtask/fstests-expected.txt` lists the test for
//! that kernel (see the rule at the top of that file). With `--daemon ours,virtiofsd` the two
//! are printed side by side, and a test ours fails that virtiofsd passes is called out.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::args::{Arg, Parser};
use crate::e2e;
use crate::guest_boot::{self, KERNEL_ARGS, Share, is_kernel_line};
use crate::guest_root::{self, GuestRoot};
use crate::provision::{self, Kernel, KernelSpec};
use crate::util::{self, step};
use volume::Volume;

mod campaign;
mod volume;

const USAGE: &str = "\
usage: cargo xtask fstests [--kernel K] [--group G] [--tests LIST] [--exclude LIST]
                           [--daemon ours|virtiofsd|PATH[,...]] [--daemon-arg A]...
                           [--kernel-arg A]... [--limit SECS] [--provision-only]
                           [--shard I/N] [--report]

Boots the Debian guest root (built into .cache/ on first use) under QEMU (TCG) with two
virtio-fs shares, TEST and SCRATCH, from the daemon, and runs fstests' ./check -virtiofs.
  --kernel K       6.1 | 6.12 | 7.3 | all, or a comma-separated list (default 6.12)
  --group G        fstests groups (quick, auto, acl, ...; comma-separated)
  --tests LIST     tests (generic/001,generic/002); with neither --group nor --tests, the
                   CI selection (the `fstests` CI step)
  --exclude LIST   tests not to run (./check -e)
  --daemon D       ours (default; built with cargo build --release -p virtiofs-device),
                   virtiofsd (1.14 from crates.io, into .cache/), or a path; `ours,virtiofsd`
                   runs both and prints them side by side
  --daemon-arg A   one more daemon argument (repeatable), after the defaults
                   --xattr --posix-acl --allow-direct-io
  --kernel-arg A   one more word for the guest kernel's command line (repeatable)
  --limit SECS     bound of one boot (default: 20 min plus 3 min a test, 10 h for a group)
  --provision-only build the guest root, kernels and daemons, boot nothing
  --shard I/N      with --group: a campaign in N shards (the group's tests, sorted, test k
                   in shard k%N+1); run shard I (a list: 1,3,5-7), or `all` (every shard not
                   run yet: an interrupted campaign resumes); one boot a shard and daemon,
                   the daemons alternating; each ended shard's results are recorded in the
                   repository (commit them), xtask/fstests-campaign/<group>-<N>/<kernel>-
                   <daemon>/shard-<I>/, its boot's logs kept in .cache/e2e/fstests/
  --report         with --group G --shard N: merge the recorded shards of that campaign into
                   one side-by-side table per kernel (boots nothing)

Logs and results of a run: .cache/e2e/fstests/<kernel>-<daemon>/ (console.log, results/,
table.txt); the expected failures: xtask/fstests-expected.txt.
";

/// The tests of the `fstests` CI step: each area once or twice, about 15 minutes under TCG on
/// the 2-core CI machine (measured 20-90 s a test on a loaded machine; check's own per-test
/// overhead under TCG is most of it). Chosen from the quick group.
pub(crate) const CI_TESTS: &[&str] = &[
    "generic/002", // hard link counts
    "generic/024", // renameat2 RENAME_NOREPLACE
    "generic/035", // rename over an open file, overwriting a directory
    "generic/029", // mmap writes past EOF, truncate
    "generic/080", // mtime after writes through mmap
    "generic/053", // POSIX ACLs (--posix-acl)
    "generic/375", // SGID cleared on setfacl
    "generic/529", // ACL xattr of a large size
    "generic/377", // listxattr
    "generic/207", // aio + O_DIRECT extending writes (--allow-direct-io)
    "generic/210", // aio + O_DIRECT reads of holes
    "generic/364", // O_DIRECT writes and fsync from two threads
    "generic/214", // fallocate, basic preallocation
    "generic/228", // fallocate against RLIMIT_FSIZE
    "generic/469", // hole punching and zero range with mmap
    "generic/313", // ctime and mtime of truncate
    "generic/430", // copy_file_range
    "generic/431", // copy_file_range ranges
    "generic/678", // io_uring reads across extents
    "generic/736", // renames while reading a large directory
    "generic/131", // POSIX locks between processes (remote, SETLKW parked while held)
    "generic/504", // flock(2) locks listed in the guest's /proc/locks (guest-local by default)
];

/// What every daemon gets before `--daemon-arg`s: xattrs and POSIX ACLs (fstests' acl and
/// attr groups), and O_DIRECT honoured (its dio tests).
const DEFAULT_DAEMON_ARGS: &[&str] = &["--xattr", "--posix-acl", "--allow-direct-io"];

/// The virtio-fs tags of the two shares.
const TEST_TAG: &str = "fstests-test";
const SCRATCH_TAG: &str = "fstests-scratch";

/// The expected-failure list, relative to the repository root.
const EXPECTED_FILE: &str = "xtask/fstests-expected.txt";

/// Longest kernel command line we hand the guest (x86's limit is 2048 bytes).
const MAX_CMDLINE: usize = 2000;

/// A daemon under test.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Daemon {
    Ours,
    Virtiofsd,
    Path(PathBuf),
}

impl Daemon {
    fn parse(text: &str) -> Result<Daemon> {
        Ok(match text {
            "ours" => Daemon::Ours,
            "virtiofsd" => Daemon::Virtiofsd,
            "" => bail!("--daemon: empty name"),
            path => Daemon::Path(std::env::current_dir()?.join(path)),
        })
    }

    /// The name in tables and run directories.
    fn name(&self) -> String {
        match self {
            Daemon::Ours => "ours".to_owned(),
            Daemon::Virtiofsd => "virtiofsd".to_owned(),
            Daemon::Path(path) => path
                .file_name()
                .map_or_else(|| "daemon".to_owned(), |n| n.to_string_lossy().into_owned()),
        }
    }
}

#[derive(Debug)]
struct Options {
    kernels: Vec<&'static KernelSpec>,
    groups: Vec<String>,
    tests: Vec<String>,
    exclude: Vec<String>,
    daemons: Vec<Daemon>,
    daemon_args: Vec<String>,
    kernel_args: Vec<String>,
    limit: Option<u64>,
    provision_only: bool,
    shards: Option<campaign::Shards>,
    report: bool,
}

fn list(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

fn parse(args: &[String]) -> Result<Options> {
    let mut options = Options {
        kernels: Vec::new(),
        groups: Vec::new(),
        tests: Vec::new(),
        exclude: Vec::new(),
        daemons: Vec::new(),
        daemon_args: Vec::new(),
        kernel_args: Vec::new(),
        limit: None,
        provision_only: false,
        shards: None,
        report: false,
    };
    let mut p = Parser::new(USAGE, args);
    while let Some(arg) = p.next()? {
        match arg {
            Arg::Long("kernel") => {
                for k in list(&p.string()?) {
                    if k == "all" {
                        options.kernels.extend(provision::KERNELS.iter());
                        continue;
                    }
                    let spec = provision::KERNELS
                        .iter()
                        .find(|s| s.label == k)
                        .with_context(|| format!("unknown kernel `{k}` (6.1, 6.12, 7.3)"))?;
                    options.kernels.push(spec);
                }
            }
            Arg::Long("group") => options.groups.extend(list(&p.string()?)),
            Arg::Long("tests") => options.tests.extend(list(&p.string()?)),
            Arg::Long("exclude") => options.exclude.extend(list(&p.string()?)),
            Arg::Long("daemon") => {
                for d in list(&p.string()?) {
                    let daemon = Daemon::parse(&d)?;
                    if !options.daemons.contains(&daemon) {
                        options.daemons.push(daemon);
                    }
                }
            }
            Arg::Long("daemon-arg") => options.daemon_args.push(p.string()?),
            Arg::Long("kernel-arg") => options.kernel_args.push(p.string()?),
            Arg::Long("limit") => {
                let v = p.string()?;
                options.limit = Some(
                    v.parse()
                        .with_context(|| format!("--limit: `{v}` is not a number"))?,
                );
            }
            Arg::Long("provision-only") => options.provision_only = true,
            Arg::Long("shard") => options.shards = Some(campaign::Shards::parse(&p.string()?)?),
            Arg::Long("report") => options.report = true,
            other => return Err(p.unexpected(other)),
        }
    }
    for name in options.tests.iter().chain(&options.exclude) {
        if !valid_test_name(name) {
            bail!("`{name}` is not a test name like generic/001");
        }
    }
    if (options.shards.is_some() || options.report)
        && (options.groups.is_empty() || !options.tests.is_empty())
    {
        bail!("--shard and --report need --group (and no --tests)");
    }
    if options.report && options.shards.is_none() {
        bail!("--report needs the campaign's --shard N");
    }
    if options.groups.is_empty() && options.tests.is_empty() {
        options.tests = CI_TESTS.iter().map(|t| (*t).to_owned()).collect();
    }
    if options.kernels.is_empty() {
        options.kernels.extend(
            provision::KERNELS
                .iter()
                .filter(|k| k.label == "6.12")
                .take(1),
        );
    }
    options.kernels = provision::KERNELS
        .iter()
        .filter(|k| options.kernels.iter().any(|x| x.label == k.label))
        .collect();
    if options.daemons.is_empty() {
        options.daemons.push(Daemon::Ours);
    }
    Ok(options)
}

/// `generic/001`, `shared/298`: a directory of tests/ and a name, nothing a shell or a kernel
/// command line would split.
fn valid_test_name(name: &str) -> bool {
    let Some((dir, test)) = name.split_once('/') else {
        return false;
    };
    let ok = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    };
    ok(dir) && ok(test)
}

/// What one test did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Pass,
    Fail,
    NotRun,
}

impl Status {
    fn word(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Fail => "fail",
            Status::NotRun => "notrun",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct TestResult {
    name: String,
    status: Status,
    /// check's own time of a passed or failed test.
    secs: Option<u64>,
    /// A not-run test's reason.
    reason: String,
}

/// Parses `FSTESTS-TEST <test> pass|fail <secs|->` and `FSTESTS-TEST <test> notrun <why>`.
fn parse_test_line(line: &str) -> Option<TestResult> {
    let rest = line.strip_prefix("FSTESTS-TEST ")?;
    let (name, rest) = rest.split_once(' ')?;
    let (status, rest) = rest.split_once(' ').unwrap_or((rest, ""));
    let status = match status {
        "pass" => Status::Pass,
        "fail" => Status::Fail,
        "notrun" => Status::NotRun,
        _ => return None,
    };
    let (secs, reason) = match status {
        Status::NotRun => (None, rest.trim().to_owned()),
        _ => (rest.trim().parse().ok(), String::new()),
    };
    Some(TestResult {
        name: name.to_owned(),
        status,
        secs,
        reason,
    })
}

/// One entry of the expected-failure list.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Expected {
    test: String,
    /// Kernel labels, or empty for every kernel.
    kernels: Vec<String>,
    reason: String,
}

impl Expected {
    fn applies(&self, test: &str, kernel: &str) -> bool {
        self.test == test && (self.kernels.is_empty() || self.kernels.iter().any(|k| k == kernel))
    }
}

/// Parses the expected-failure list: `<test> <all|6.12,7.3> <reason...>` a line, `#`
/// comments and blank lines ignored.
fn parse_expected(text: &str) -> Result<Vec<Expected>> {
    let mut out: Vec<Expected> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut words = line.splitn(3, char::is_whitespace);
        let (Some(test), Some(kernels), Some(reason)) = (words.next(), words.next(), words.next())
        else {
            bail!(
                "{EXPECTED_FILE}:{}: want `<test> <kernels> <reason>`",
                i + 1
            );
        };
        let reason = reason.trim();
        if !valid_test_name(test) || reason.len() < 10 {
            bail!(
                "{EXPECTED_FILE}:{}: `{test}` needs a test name and a reason",
                i + 1
            );
        }
        let kernels: Vec<String> = if kernels == "all" {
            Vec::new()
        } else {
            let labels: Vec<String> = list(kernels).collect();
            for k in &labels {
                if !provision::KERNELS.iter().any(|s| s.label == k) {
                    bail!("{EXPECTED_FILE}:{}: unknown kernel `{k}`", i + 1);
                }
            }
            labels
        };
        if out.iter().any(|e| e.test == test) {
            bail!("{EXPECTED_FILE}:{}: {test} is listed twice", i + 1);
        }
        out.push(Expected {
            test: test.to_owned(),
            kernels,
            reason: reason.to_owned(),
        });
    }
    Ok(out)
}

fn load_expected() -> Result<Vec<Expected>> {
    let path = util::root().join(EXPECTED_FILE);
    let text =
        fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
    parse_expected(&text)
}

/// What one boot produced.
#[derive(Debug)]
struct Run {
    kernel: &'static str,
    daemon: String,
    tests: Vec<TestResult>,
    /// The run went wrong beyond a test failing: no DONE, a timeout, a crashed daemon...
    problems: Vec<String>,
    total: Duration,
    /// check's own wall time (seconds), from `FSTESTS-DONE`.
    check_secs: Option<u64>,
    dir: PathBuf,
}

impl Run {
    /// The guest kernel oopsed before the guest root's script started (no `FSTESTS-BOOTED`
    /// on the console, an oops there): before either share was mounted.
    fn died_before_userland(&self) -> bool {
        let console = self.dir.join("console.log");
        let text = fs::read_to_string(&console).unwrap_or_default();
        self.tests.is_empty()
            && !text.contains("FSTESTS-BOOTED")
            && e2e::kernel_oops(&console).is_some()
    }

    fn count(&self, status: Status) -> usize {
        self.tests.iter().filter(|t| t.status == status).count()
    }

    fn unexpected<'a>(&'a self, expected: &'a [Expected]) -> impl Iterator<Item = &'a TestResult> {
        self.tests.iter().filter(|t| {
            t.status == Status::Fail && !expected.iter().any(|e| e.applies(&t.name, self.kernel))
        })
    }
}

/// Entry point of `cargo xtask fstests`.
pub(crate) fn run(args: &[String]) -> Result<()> {
    let options = parse(args)?;
    let expected = load_expected()?;
    let cache = provision::cache_dir()?;
    if options.report
        && let Some(shards) = &options.shards
    {
        let bugs = campaign::report(&util::root(), &options.groups, shards.of)?;
        if !bugs.is_empty() {
            bail!("ours fails, virtiofsd passes: {}", bugs.join(" "));
        }
        return Ok(());
    }
    let _lock = e2e::RunLock::acquire(&cache)?;
    step("provisioning");
    println!("cache: {}", cache.display());
    provision::ensure_host_packages()?;
    let root = guest_root::ensure(&cache)?;
    println!("guest root: {}", root.image.display());
    let mut kernels = Vec::new();
    for spec in &options.kernels {
        kernels.push(provision::ensure_kernel(&cache, spec)?);
    }
    let mut daemons = Vec::new();
    for daemon in &options.daemons {
        let path = match daemon {
            Daemon::Ours => e2e::build_our_daemon()?,
            Daemon::Virtiofsd => provision::ensure_stand_in(&cache)?,
            Daemon::Path(path) => path.clone(),
        };
        if !path.is_file() {
            bail!("daemon {} does not exist", path.display());
        }
        daemons.push((daemon.clone(), path));
    }
    let campaign = match &options.shards {
        Some(shards) => Some(campaign::Campaign::open(
            &util::root(),
            &cache,
            &options.groups,
            shards.of,
            &root.fstests,
        )?),
        None => None,
    };
    if options.provision_only {
        for kernel in &kernels {
            let initramfs = guest_root::build_initramfs(&cache, kernel)?;
            println!("{}: {}", kernel.label, initramfs.display());
        }
        if let (Some(c), Some(shards)) = (&campaign, &options.shards) {
            c.describe(&shards.pick, &daemons_names(&daemons), &kernels);
        }
        return Ok(());
    }

    let mut runs = Vec::new();
    for kernel in &kernels {
        let initramfs = guest_root::build_initramfs(&cache, kernel)?;
        // One boot per (shard, daemon), the daemons alternating on each shard.
        let mut plan: Vec<(Option<usize>, usize)> = Vec::new();
        match (&campaign, &options.shards) {
            (Some(c), Some(shards)) => {
                let mut picked: Vec<usize> = daemons
                    .iter()
                    .flat_map(|(d, _)| c.picked(&shards.pick, kernel.label, &d.name()))
                    .collect();
                picked.sort_unstable();
                picked.dedup();
                for i in picked {
                    for (d, (daemon, _)) in daemons.iter().enumerate() {
                        if c.picked(&shards.pick, kernel.label, &daemon.name())
                            .contains(&i)
                        {
                            plan.push((Some(i), d));
                        }
                    }
                }
                if plan.is_empty() {
                    println!("kernel {}: every shard has run", kernel.label);
                }
            }
            _ => plan.extend((0..daemons.len()).map(|d| (None, d))),
        }
        for (shard, d) in plan {
            let (daemon, path) = &daemons[d];
            let (dir, selection) = match (&campaign, shard) {
                (Some(c), Some(i)) => (
                    c.shard_dir(i, kernel.label, &daemon.name()),
                    Selection {
                        groups: Vec::new(),
                        tests: c.tests(i),
                    },
                ),
                _ => (
                    cache
                        .join("fstests")
                        .join(format!("{}-{}", kernel.label, daemon.name())),
                    Selection {
                        groups: options.groups.clone(),
                        tests: options.tests.clone(),
                    },
                ),
            };
            let of = options.shards.as_ref().map_or(0, |s| s.of);
            step(&format!(
                "fstests: kernel {} ({}), daemon {}{}",
                kernel.label,
                kernel.release,
                daemon.name(),
                shard.map_or_else(String::new, |i| format!(
                    ", shard {i}/{of} ({} tests)",
                    selection.tests.len()
                ))
            ));
            let boot_once = || {
                boot(
                    kernel,
                    &initramfs,
                    &root,
                    daemon,
                    path,
                    &selection,
                    dir.clone(),
                    &options,
                )
            };
            let mut run = boot_once()?;
            if run.died_before_userland() {
                // As in `cargo xtask e2e`: an early-boot oops under TCG, before anything
                // mounted a share, gets one more boot, which must pass.
                print_run(&run, &expected, &root);
                println!(
                    "the guest kernel oopsed before fstests' script started; booting it once more"
                );
                run = boot_once()?;
            }
            if let (Some(c), Some(i)) = (&campaign, shard) {
                c.record(i, &run)?;
            }
            print_run(&run, &expected, &root);
            runs.push(run);
        }
    }

    step("fstests summary");
    let mut bad = Vec::new();
    for run in &runs {
        let unexpected: Vec<&str> = run.unexpected(&expected).map(|t| t.name.as_str()).collect();
        println!(
            "kernel {:<5} {:<10} {:>4} passed {:>4} failed ({} unexpected) {:>4} not run  \
             {:>6.0} s{}",
            run.kernel,
            run.daemon,
            run.count(Status::Pass),
            run.count(Status::Fail),
            unexpected.len(),
            run.count(Status::NotRun),
            run.total.as_secs_f64(),
            if run.problems.is_empty() {
                String::new()
            } else {
                format!("  PROBLEMS: {}", run.problems.join("; "))
            }
        );
        // virtiofsd is the reference: its unexpected failures are candidates for the list,
        // not failures of this project.
        let is_reference = run.daemon == "virtiofsd";
        if !run.problems.is_empty() || (!unexpected.is_empty() && !is_reference) {
            bad.push(format!("{} {}", run.kernel, run.daemon));
        }
    }
    if let (Some(_), Some(shards)) = (&campaign, &options.shards) {
        step("fstests campaign so far");
        campaign::report(&util::root(), &options.groups, shards.of)?;
    } else {
        for kernel in &kernels {
            let on: Vec<&Run> = runs.iter().filter(|r| r.kernel == kernel.label).collect();
            let path = cache
                .join("fstests")
                .join(format!("compare-{}.txt", kernel.label));
            side_by_side(&on, kernel.label, &path)?;
        }
    }
    if !bad.is_empty() {
        bail!("fstests failed: {}", bad.join(", "));
    }
    Ok(())
}

fn daemons_names(daemons: &[(Daemon, PathBuf)]) -> Vec<String> {
    daemons.iter().map(|(d, _)| d.name()).collect()
}

/// What one boot's check runs.
#[derive(Debug)]
struct Selection {
    groups: Vec<String>,
    tests: Vec<String>,
}

/// Boots `kernel` with the guest root against two instances of `daemon`, running `selection`,
/// with its logs and results in `dir` (emptied first).
#[allow(clippy::too_many_arguments)] // one boot's every input; a struct would only rename them
fn boot(
    kernel: &Kernel,
    initramfs: &Path,
    root: &GuestRoot,
    daemon: &Daemon,
    daemon_path: &Path,
    selection: &Selection,
    dir: PathBuf,
    options: &Options,
) -> Result<Run> {
    if dir.exists() {
        for share in ["test", "scratch"] {
            Volume::clear_stale(&dir.join(share));
        }
        fs::remove_dir_all(&dir).with_context(|| format!("cannot clear {}", dir.display()))?;
    }
    fs::create_dir_all(&dir)?;
    let console = dir.join("console.log");
    let mut daemon_args: Vec<String> = DEFAULT_DAEMON_ARGS
        .iter()
        .map(|a| (*a).to_owned())
        .collect();
    daemon_args.extend(options.daemon_args.iter().cloned());
    // Declared before the shares, so dropped after their daemons have ended.
    let mut volumes = Vec::new();
    let mut shares = Vec::new();
    for (share, tag) in [("test", TEST_TAG), ("scratch", SCRATCH_TAG)] {
        let shared = dir.join(share);
        volumes.push(Volume::create(
            dir.join(format!("{share}.img")),
            shared.clone(),
        )?);
        // sun_path holds 108 bytes: the socket lives outside the cache.
        let socket = std::env::temp_dir().join(format!(
            "virtiofs-fstests-{}-{}-{share}.sock",
            std::process::id(),
            kernel.label
        ));
        let log = dir.join(format!("daemon-{share}.log"));
        shares.push(Share::start(
            share,
            daemon_path,
            &shared,
            tag,
            &daemon_args,
            socket,
            &log,
        )?);
    }

    let mut append: Vec<String> = KERNEL_ARGS.iter().map(|a| (*a).to_owned()).collect();
    append.push(format!("fstests_test={TEST_TAG}"));
    append.push(format!("fstests_scratch={SCRATCH_TAG}"));
    if !selection.groups.is_empty() {
        append.push(format!("fstests_groups={}", selection.groups.join(",")));
    }
    if !selection.tests.is_empty() {
        append.push(format!("fstests_tests={}", selection.tests.join(",")));
    }
    if !options.exclude.is_empty() {
        append.push(format!("fstests_exclude={}", options.exclude.join(",")));
    }
    append.extend(options.kernel_args.iter().cloned());
    let append = append.join(" ");
    if append.len() > MAX_CMDLINE {
        bail!(
            "the guest's command line would be {} bytes (at most {MAX_CMDLINE}): \
             select fewer tests, or groups",
            append.len()
        );
    }
    let qemu = guest_boot::qemu(
        kernel,
        initramfs,
        root,
        &append,
        "2G",
        2,
        &shares,
        &dir.join("qemu.log"),
    )?;
    let bound = Duration::from_secs(options.limit.unwrap_or(if selection.groups.is_empty() {
        20 * 60 + 180 * selection.tests.len() as u64
    } else {
        10 * 3600
    }));
    let mut lines: Vec<String> = Vec::new();
    let mut booted = false;
    let ended = guest_boot::run(
        qemu,
        &console,
        &mut shares,
        bound,
        "FSTESTS-DONE",
        &mut |line| {
            if line.starts_with("FSTESTS-BOOTED") {
                booted = true;
            }
            // After the boot, check's own progress lines; the kernel's go to console.log.
            if line.starts_with("FSTESTS-")
                || line.starts_with("GUEST-ROOT-")
                || booted && !is_kernel_line(line)
            {
                println!("[{} {}] {line}", kernel.label, daemon.name());
            }
            lines.push(line.to_owned());
        },
    )?;
    let (total, mut problems) = (ended.total, ended.problems);

    let tests: Vec<TestResult> = lines.iter().filter_map(|l| parse_test_line(l)).collect();
    for line in &lines {
        if let Some(rest) = line
            .strip_prefix("FSTESTS-ERROR ")
            .or_else(|| line.strip_prefix("GUEST-ROOT-FAIL "))
        {
            problems.push(rest.to_owned());
        }
    }
    let done = lines.iter().find_map(|l| l.strip_prefix("FSTESTS-DONE "));
    let check_secs = done.and_then(|d| d.split_whitespace().nth(1)?.parse().ok());
    if done.is_none() {
        problems.push("the guest did not finish (no FSTESTS-DONE)".to_owned());
        e2e::print_unfinished_boot(&console);
    }
    if tests.is_empty() && problems.is_empty() {
        problems.push("no test ran".to_owned());
    }
    // The guest's results/, off the TEST share.
    let copied = dir.join("test").join("fstests-results");
    if copied.is_dir() {
        // Off the TEST share's filesystem, which goes with the boot.
        let mut cp = util::cmd("cp");
        cp.arg("-a").arg(&copied).arg(dir.join("results"));
        util::run(cp)?;
    } else if done.is_some() {
        problems.push("the guest's results/ did not reach the TEST share".to_owned());
    }
    let run = Run {
        kernel: kernel.label,
        daemon: daemon.name(),
        tests,
        problems,
        total,
        check_secs,
        dir,
    };
    fs::write(run.dir.join("table.txt"), table(&run))?;
    Ok(run)
}

/// Every test of a run, one line each (`table.txt`).
fn table(run: &Run) -> String {
    let mut out = format!("# kernel {} daemon {}\n", run.kernel, run.daemon);
    for t in &run.tests {
        let secs = t.secs.map_or_else(|| "-".to_owned(), |s| s.to_string());
        let _ = writeln!(
            out,
            "{:<14} {:<7} {:>5}  {}",
            t.name,
            t.status.word(),
            secs,
            t.reason
        );
    }
    out
}

/// Prints a run: counts, the failures with the head of their output diff, the not-run
/// reasons (grouped) and the stale entries of the expected list.
fn print_run(run: &Run, expected: &[Expected], root: &GuestRoot) {
    println!(
        "\nkernel {}, daemon {}: {} passed, {} failed, {} not run; boot {:.0} s, check {} s",
        run.kernel,
        run.daemon,
        run.count(Status::Pass),
        run.count(Status::Fail),
        run.count(Status::NotRun),
        run.total.as_secs_f64(),
        run.check_secs
            .map_or_else(|| "-".to_owned(), |s| s.to_string())
    );
    for t in run.tests.iter().filter(|t| t.status == Status::Fail) {
        match expected.iter().find(|e| e.applies(&t.name, run.kernel)) {
            Some(e) => println!("  {:<14} fail (expected: {})", t.name, e.reason),
            None => {
                println!("  {:<14} FAIL", t.name);
                for line in failure_diff(&run.dir, root, &t.name).lines().take(30) {
                    println!("    {line}");
                }
            }
        }
    }
    let mut reasons: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for t in run.tests.iter().filter(|t| t.status == Status::NotRun) {
        reasons.entry(&t.reason).or_default().push(&t.name);
    }
    for (reason, tests) in &reasons {
        let shown: Vec<&str> = tests.iter().take(6).copied().collect();
        println!(
            "  not run ({}): {reason}: {}{}",
            tests.len(),
            shown.join(" "),
            if tests.len() > shown.len() {
                " ..."
            } else {
                ""
            }
        );
    }
    for e in expected {
        if !e.kernels.is_empty() && !e.kernels.iter().any(|k| k == run.kernel) {
            continue;
        }
        if run
            .tests
            .iter()
            .any(|t| t.name == e.test && t.status == Status::Pass)
        {
            println!("  note: {} is in the expected failures but passed", e.test);
        }
    }
    for problem in &run.problems {
        println!("  problem: {problem}");
    }
    println!("  results: {}", run.dir.display());
}

/// `diff -u tests/<t>.out results/<t>.out.bad`, or why there is none.
fn failure_diff(dir: &Path, root: &GuestRoot, test: &str) -> String {
    let bad = dir.join("results").join(format!("{test}.out.bad"));
    let good = root.fstests.join("tests").join(format!("{test}.out"));
    if !bad.is_file() {
        return format!("(no {}; see results/{test}.full and .dmesg)", bad.display());
    }
    let mut cmd = util::cmd("diff");
    cmd.arg("-u").arg(&good).arg(&bad);
    match cmd.output() {
        Ok(out) => String::from_utf8_lossy(&out.stdout).into_owned(),
        Err(e) => format!("(diff failed: {e})"),
    }
}

/// The side-by-side table of the runs `on` one kernel (when more than one daemon ran): prints
/// every test whose results differ or that failed, and writes the full table to `path`.
/// Returns the tests ours fails and virtiofsd passes.
fn side_by_side(on: &[&Run], kernel: &str, path: &Path) -> Result<Vec<String>> {
    if on.len() < 2 {
        return Ok(Vec::new());
    }
    let mut names: Vec<&str> = on
        .iter()
        .flat_map(|r| r.tests.iter().map(|t| t.name.as_str()))
        .collect();
    names.sort_unstable();
    names.dedup();
    let status = |run: &Run, name: &str| {
        run.tests
            .iter()
            .find(|t| t.name == name)
            .map_or("-", |t| t.status.word())
    };
    let mut full = format!("{:<14}", "test");
    for r in on {
        let _ = write!(full, " {:<10}", r.daemon);
    }
    full.push('\n');
    let mut shown = full.clone();
    let mut bugs: Vec<String> = Vec::new();
    for name in &names {
        let words: Vec<&str> = on.iter().map(|r| status(r, name)).collect();
        let mut line = format!("{name:<14}");
        for w in &words {
            let _ = write!(line, " {w:<10}");
        }
        line.push('\n');
        full.push_str(&line);
        // A test only some daemons ran yet (a campaign's shard run on one so far) is no
        // difference.
        let differ = !words.contains(&"-") && words.iter().any(|w| *w != words[0]);
        if differ || words.contains(&"fail") {
            shown.push_str(&line);
        }
        let ours = on.iter().position(|r| r.daemon == "ours");
        let reference = on.iter().position(|r| r.daemon == "virtiofsd");
        if let (Some(o), Some(v)) = (ours, reference)
            && words[o] == "fail"
            && words[v] == "pass"
        {
            bugs.push((*name).to_owned());
        }
    }
    fs::write(path, &full)?;
    println!(
        "\nkernel {kernel}: tests that differ or fail ({})",
        path.display()
    );
    print!("{shown}");
    for (label, status) in [
        ("pass", Status::Pass),
        ("fail", Status::Fail),
        ("notrun", Status::NotRun),
    ] {
        let counts: String = on
            .iter()
            .map(|r| format!(" {:<10}", r.count(status)))
            .collect();
        println!("{label:<14}{counts}");
    }
    if !bugs.is_empty() {
        println!("ours fails, virtiofsd passes (bugs): {}", bugs.join(" "));
    }
    Ok(bugs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_test_lines() {
        assert_eq!(
            parse_test_line("FSTESTS-TEST generic/001 pass 12"),
            Some(TestResult {
                name: "generic/001".to_owned(),
                status: Status::Pass,
                secs: Some(12),
                reason: String::new()
            })
        );
        let t = parse_test_line("FSTESTS-TEST generic/003 fail -").unwrap();
        assert_eq!((t.status, t.secs), (Status::Fail, None));
        let t =
            parse_test_line("FSTESTS-TEST generic/004 notrun O_TMPFILE is not supported").unwrap();
        assert_eq!(t.status, Status::NotRun);
        assert_eq!(t.reason, "O_TMPFILE is not supported");
        assert_eq!(parse_test_line("FSTESTS-TEST generic/005 maybe 1"), None);
        assert_eq!(parse_test_line("generic/005 pass 1"), None);
    }

    #[test]
    fn parses_the_expected_list() {
        let list = parse_expected(
            "# comment\n\n\
             generic/003 all atime is not supported by virtio-fs\n\
             generic/120 6.12,7.3   atime granularity, fails with virtiofsd too\n",
        )
        .unwrap();
        assert_eq!(list.len(), 2);
        assert!(list[0].applies("generic/003", "6.1"));
        assert!(list[1].applies("generic/120", "7.3"));
        assert!(!list[1].applies("generic/120", "6.1"));
        assert!(!list[1].applies("generic/003", "7.3"));
        assert!(parse_expected("generic/003 all short").is_err());
        assert!(parse_expected("generic/003 5.10 a reason long enough").is_err());
        assert!(parse_expected("generic/003").is_err());
        assert!(
            parse_expected("generic/003 all a reason long enough\ngeneric/003 all again, twice")
                .is_err()
        );
    }

    #[test]
    fn the_repository_list_parses() {
        load_expected().unwrap();
    }

    #[test]
    fn options() -> Result<()> {
        let o = parse(&[])?;
        assert_eq!(o.kernels.len(), 1);
        assert_eq!(o.kernels[0].label, "6.12");
        assert_eq!(o.tests.len(), CI_TESTS.len());
        assert_eq!(o.daemons, [Daemon::Ours]);
        let o = parse(&[
            "--group=quick".to_owned(),
            "--daemon".to_owned(),
            "ours,virtiofsd".to_owned(),
            "--kernel=7.3,6.12".to_owned(),
        ])?;
        assert!(o.tests.is_empty());
        assert_eq!(o.groups, ["quick"]);
        assert_eq!(o.daemons, [Daemon::Ours, Daemon::Virtiofsd]);
        let labels: Vec<&str> = o.kernels.iter().map(|k| k.label).collect();
        assert_eq!(labels, ["6.12", "7.3"]);
        assert!(parse(&["--tests=generic/001;reboot".to_owned()]).is_err());
        assert!(parse(&["--tests=001".to_owned()]).is_err());
        let o = parse(&["--group=quick".to_owned(), "--shard=2/40".to_owned()])?;
        assert_eq!(o.shards.map(|s| s.of), Some(40));
        assert!(parse(&["--shard=2/40".to_owned()]).is_err());
        assert!(parse(&["--group=quick".to_owned(), "--report".to_owned()]).is_err());
        assert!(
            parse(&[
                "--group=quick".to_owned(),
                "--tests=generic/001".to_owned(),
                "--shard=1/2".to_owned()
            ])
            .is_err()
        );
        Ok(())
    }

    #[test]
    fn ci_tests_are_test_names() {
        assert!(CI_TESTS.iter().all(|t| valid_test_name(t)));
    }
}
