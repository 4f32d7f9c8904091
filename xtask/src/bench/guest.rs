//! The guest part of `cargo xtask bench --against virtiofsd`: real workloads in the Debian
//! guest root of `cargo xtask fstests` ([`crate::guest_root`]), on one virtio-fs share.
//!
//! One boot per (round, vCPU count, daemon), the daemons alternating (ours, virtiofsd, ours,
//! virtiofsd...), each the same image and kernel with one share, a fresh host temporary
//! directory, from that daemon ([`guest_boot`]). The guest's `xtask/guest-root/run-bench` runs
//! the selected workloads and prints `BENCH-BEGIN <row>` / `BENCH-END <row> value=<x>
//! unit=<u>` around each measurement; the host reads the console live and samples the
//! daemon's CPU time (user + system of the process it started and every process below it:
//! a sandbox's serving child) at both, and its peak RSS (`VmHWM`) at every BENCH line.
//!
//! Workloads: fio (O_DIRECT, on a 256 MiB file, 15 s a job) random 4 KiB reads and writes
//! with psync and with libaio at iodepth 16, sequential 1 MiB reads and writes; 1000 and
//! 10 000 empty files created, stat'ed, listed with their attributes and removed (a row per
//! phase, files/s); the fstests release tarball ([`guest_root::tarball`], decompressed on the
//! host and copied onto the share) untarred, and a `find` stat'ing every entry of the tree.
//! Every measurement starts with the guest's caches dropped. The table (one row per
//! workload and vCPU count; the best round of each daemon) is printed and written to
//! `<cache>/bench/guest-table.txt`; each boot's console, daemon and QEMU logs stay in
//! `<cache>/bench/guest/<daemon>-<n>cpu/` until the next run.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, Result, bail};

use crate::daemon_proc;
use crate::e2e;
use crate::guest_boot::{self, KERNEL_ARGS, Share};
use crate::guest_root::{self, GuestRoot};
use crate::provision::{self, Kernel, KernelSpec};
use crate::util::{self, step};

/// The workloads, in the order a boot runs them (`meta-N` is four rows: create, stat, ls,
/// rm; `walk` untars first, unmeasured, when `untar` is not selected).
pub(crate) const WORKLOADS: &[&str] = &[
    "randread-4k-psync",
    "randread-4k-libaio16",
    "randwrite-4k-psync",
    "randwrite-4k-libaio16",
    "seqread-1m",
    "seqwrite-1m",
    "meta-1000",
    "meta-10000",
    "untar",
    "walk",
];

/// The virtio-fs tag of the share.
const TAG: &str = "bench";

/// Memory of the guest (the fio file is written with O_DIRECT: the page cache does not need
/// to hold it).
const MEMORY: &str = "2G";

/// What the guest part runs.
#[derive(Debug, Clone)]
pub(crate) struct Options {
    pub(crate) vcpus: Vec<u32>,
    /// Names of [`WORKLOADS`], in that order.
    pub(crate) workloads: Vec<&'static str>,
    pub(crate) kernel: &'static KernelSpec,
    /// Measured seconds of each fio job.
    pub(crate) fio_secs: u32,
    pub(crate) rounds: usize,
}

impl Options {
    /// The defaults: 1 and 2 vCPUs, every workload, kernel 6.12, 15 s fio jobs, one round.
    pub(crate) fn new() -> Result<Options> {
        Ok(Options {
            vcpus: Vec::new(),
            workloads: Vec::new(),
            kernel: kernel("6.12")?,
            fio_secs: 15,
            rounds: 1,
        })
    }

    /// Adds a `--guest-workload` value (a comma list; `all` is every workload).
    pub(crate) fn add_workloads(&mut self, text: &str) -> Result<()> {
        for w in text.split(',').map(str::trim).filter(|w| !w.is_empty()) {
            if w == "all" {
                self.workloads.extend(WORKLOADS);
                continue;
            }
            let known = WORKLOADS.iter().find(|k| **k == w).with_context(|| {
                format!("--guest-workload {w}: not one of {}", WORKLOADS.join(", "))
            })?;
            self.workloads.push(known);
        }
        Ok(())
    }

    /// Adds a `--vcpus` value (a comma list).
    pub(crate) fn add_vcpus(&mut self, text: &str) -> Result<()> {
        for v in text.split(',').map(str::trim).filter(|v| !v.is_empty()) {
            let n: u32 = v.parse().with_context(|| format!("--vcpus {v}"))?;
            if !(1..=16).contains(&n) {
                bail!("--vcpus {v}: from 1 to 16");
            }
            self.vcpus.push(n);
        }
        Ok(())
    }

    /// Fills in the defaults of what was not given and puts the lists in order.
    pub(crate) fn finish(&mut self) {
        if self.workloads.is_empty() {
            self.workloads.extend(WORKLOADS);
        }
        let picked = std::mem::take(&mut self.workloads);
        self.workloads = WORKLOADS
            .iter()
            .copied()
            .filter(|w| picked.contains(w))
            .collect();
        if self.vcpus.is_empty() {
            self.vcpus.extend([1, 2]);
        }
        self.vcpus.sort_unstable();
        self.vcpus.dedup();
        self.rounds = self.rounds.max(1);
    }
}

/// The guest kernel a `--kernel` label names.
pub(crate) fn kernel(label: &str) -> Result<&'static KernelSpec> {
    provision::KERNELS
        .iter()
        .find(|s| s.label == label)
        .with_context(|| format!("unknown kernel `{label}` (6.1, 6.12, 7.3)"))
}

/// What a figure counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unit {
    Iops,
    MibPerSec,
    FilesPerSec,
    Secs,
}

impl Unit {
    fn parse(text: &str) -> Option<Unit> {
        Some(match text {
            "iops" => Unit::Iops,
            "MiB/s" => Unit::MibPerSec,
            "files/s" => Unit::FilesPerSec,
            "s" => Unit::Secs,
            _ => return None,
        })
    }

    fn word(self) -> &'static str {
        match self {
            Unit::Iops => "iops",
            Unit::MibPerSec => "MiB/s",
            Unit::FilesPerSec => "files/s",
            Unit::Secs => "s",
        }
    }

    /// A rate (more is better), not a time.
    fn is_rate(self) -> bool {
        self != Unit::Secs
    }

    /// `a` is better than `b`.
    fn better(self, a: f64, b: f64) -> bool {
        if self.is_rate() { a > b } else { a < b }
    }

    /// Ours against theirs, oriented so that more than 1 means ours is better.
    fn ratio(self, ours: f64, theirs: f64) -> f64 {
        if self.is_rate() {
            ours / theirs.max(1e-9)
        } else {
            theirs / ours.max(1e-9)
        }
    }
}

/// A console line of `run-bench` the host acts on.
#[derive(Debug, Clone, PartialEq)]
enum Line<'a> {
    Begin(&'a str),
    End {
        row: &'a str,
        value: f64,
        unit: Unit,
    },
    Fail(&'a str),
    Error(&'a str),
    Done,
}

/// Parses `BENCH-BEGIN <row>`, `BENCH-END <row> value=<x> unit=<u> [k=v...]`, `BENCH-FAIL
/// <row> <why>`, `BENCH-ERROR <why>` and `BENCH-DONE <secs>`; `None` for anything else (a
/// `BENCH-END` without a number and a known unit included).
fn parse_line(line: &str) -> Option<Line<'_>> {
    let (word, rest) = line.split_once(' ').unwrap_or((line, ""));
    let rest = rest.trim();
    match word {
        "BENCH-BEGIN" if !rest.is_empty() && !rest.contains(' ') => Some(Line::Begin(rest)),
        "BENCH-END" => {
            let mut words = rest.split_whitespace();
            let row = words.next()?;
            let fields: BTreeMap<&str, &str> = words.filter_map(|w| w.split_once('=')).collect();
            let value: f64 = fields.get("value")?.parse().ok()?;
            let unit = Unit::parse(fields.get("unit")?)?;
            value.is_finite().then_some(Line::End { row, value, unit })
        }
        "BENCH-FAIL" if !rest.is_empty() => Some(Line::Fail(rest)),
        "BENCH-ERROR" => Some(Line::Error(rest)),
        "BENCH-DONE" => Some(Line::Done),
        _ => None,
    }
}

/// One measurement of one boot.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Figure {
    value: f64,
    unit: Unit,
    /// The daemon's CPU time between BENCH-BEGIN and BENCH-END.
    cpu: Option<Duration>,
}

/// What one boot measured, fed line by line.
#[derive(Debug, Default)]
struct Boot {
    rows: Vec<(String, Figure)>,
    /// The daemon's peak RSS (KiB), the largest seen.
    peak_rss_kib: Option<u64>,
    problems: Vec<String>,
    done: bool,
    /// CPU time at each open BENCH-BEGIN.
    begun: BTreeMap<String, Option<Duration>>,
}

impl Boot {
    /// Takes one console line; `cpu` and `rss` sample the daemon (called only on BENCH
    /// lines).
    fn line(
        &mut self,
        line: &str,
        cpu: &mut dyn FnMut() -> Option<Duration>,
        rss: &mut dyn FnMut() -> Option<u64>,
    ) {
        let Some(parsed) = parse_line(line) else {
            if line.starts_with("BENCH-END ") {
                self.problems.push(format!("cannot parse `{line}`"));
            }
            return;
        };
        if let Some(kib) = rss() {
            self.peak_rss_kib = Some(self.peak_rss_kib.map_or(kib, |p| p.max(kib)));
        }
        match parsed {
            Line::Begin(row) => {
                self.begun.insert(row.to_owned(), cpu());
            }
            Line::End { row, value, unit } => {
                let now = cpu();
                let at_begin = self.begun.remove(row).flatten();
                let cpu = match (at_begin, now) {
                    (Some(a), Some(b)) => Some(b.saturating_sub(a)),
                    _ => None,
                };
                self.rows
                    .push((row.to_owned(), Figure { value, unit, cpu }));
            }
            Line::Fail(what) => self.problems.push(format!("failed: {what}")),
            Line::Error(what) => self.problems.push(what.to_owned()),
            Line::Done => self.done = true,
        }
    }
}

/// A daemon under comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Side {
    Ours,
    Virtiofsd,
}

impl Side {
    fn name(self) -> &'static str {
        match self {
            Side::Ours => "ours",
            Side::Virtiofsd => "virtiofsd",
        }
    }
}

/// The best figure of each (row, vCPUs) and daemon, over every round.
#[derive(Debug, Default)]
struct Results {
    /// The rows in the order first seen.
    order: Vec<(String, u32)>,
    figures: BTreeMap<(String, u32, Side), Figure>,
    peak_rss_kib: BTreeMap<(u32, Side), u64>,
}

impl Results {
    fn add(&mut self, side: Side, vcpus: u32, boot: &Boot) {
        for (row, figure) in &boot.rows {
            let key = (row.clone(), vcpus);
            if !self.order.contains(&key) {
                self.order.push(key);
            }
            let best = self
                .figures
                .entry((row.clone(), vcpus, side))
                .or_insert(*figure);
            if figure.unit.better(figure.value, best.value) {
                *best = *figure;
            }
        }
        if let Some(kib) = boot.peak_rss_kib {
            let peak = self.peak_rss_kib.entry((vcpus, side)).or_insert(kib);
            *peak = (*peak).max(kib);
        }
    }

    /// The table: a row per (workload, vCPUs); both figures, the ratio (more than 1: ours is
    /// better), each daemon's CPU seconds in that measurement and its peak RSS in that boot.
    fn table(&self) -> String {
        let dash = || "-".to_owned();
        let mut out = format!(
            "{:<22} {:>5} {:>7} | {:>10} {:>10} {:>6} | {:>8} {:>8} | {:>7} {:>7}\n",
            "workload",
            "vcpus",
            "unit",
            "ours",
            "virtiofsd",
            "ratio",
            "ours cpu",
            "vfsd cpu",
            "ours MiB",
            "vfsd MiB"
        );
        for (row, vcpus) in &self.order {
            let get = |side| self.figures.get(&(row.clone(), *vcpus, side));
            let (ours, theirs) = (get(Side::Ours), get(Side::Virtiofsd));
            let Some(unit) = ours.or(theirs).map(|f| f.unit) else {
                continue;
            };
            let value = |f: Option<&Figure>| {
                f.map_or_else(dash, |f| match f.unit {
                    Unit::Iops | Unit::FilesPerSec => format!("{:.0}", f.value),
                    Unit::MibPerSec | Unit::Secs => format!("{:.2}", f.value),
                })
            };
            let ratio = match (ours, theirs) {
                (Some(o), Some(t)) if o.unit == t.unit => {
                    format!("{:.2}", unit.ratio(o.value, t.value))
                }
                _ => dash(),
            };
            let cpu = |f: Option<&Figure>| {
                f.and_then(|f| f.cpu)
                    .map_or_else(dash, |c| format!("{:.2}", c.as_secs_f64()))
            };
            let rss = |side| {
                self.peak_rss_kib
                    .get(&(*vcpus, side))
                    .map_or_else(dash, |k| format!("{:.1}", *k as f64 / 1024.0))
            };
            let _ = writeln!(
                out,
                "{row:<22} {vcpus:>5} {:>7} | {:>10} {:>10} {ratio:>6} | {:>8} {:>8} | {:>7} {:>7}",
                unit.word(),
                value(ours),
                value(theirs),
                cpu(ours),
                cpu(theirs),
                rss(Side::Ours),
                rss(Side::Virtiofsd),
            );
        }
        out.push_str(
            "(ratio: ours/virtiofsd for rates, virtiofsd/ours for times: more than 1 is ours \
             better; cpu: the daemon's user+system seconds during the measurement; MiB: its \
             peak RSS in that boot)\n",
        );
        out
    }
}

/// The source tree the guest untars: the fstests tarball, decompressed once into
/// `<cache>/bench/src.tar` (so that the guest's time is the file system's, not xz's).
fn source_tar(cache: &Path) -> Result<PathBuf> {
    let dir = cache.join("bench");
    fs::create_dir_all(&dir)?;
    let tar = dir.join("src.tar");
    let stamp_path = dir.join("src.tar.stamp");
    let stamp = guest_root::FSTESTS_TARBALL.to_owned();
    if tar.is_file() && fs::read_to_string(&stamp_path).is_ok_and(|s| s == stamp) {
        return Ok(tar);
    }
    let tarball = guest_root::tarball()?;
    let partial = dir.join("src.tar.partial");
    let mut cmd = util::cmd("bash");
    cmd.arg("-c")
        .arg("set -o pipefail; xz -dc \"$1\" > \"$2\"")
        .arg("bash")
        .arg(&tarball)
        .arg(&partial);
    util::run(cmd).context("decompressing the source tree (is xz-utils installed?)")?;
    fs::rename(&partial, &tar)?;
    fs::write(&stamp_path, stamp)?;
    Ok(tar)
}

/// Everything one boot needs besides its daemon.
struct Machine<'a> {
    cache: &'a Path,
    kernel: &'a Kernel,
    initramfs: &'a Path,
    root: &'a GuestRoot,
    source: Option<&'a Path>,
    options: &'a Options,
}

/// One boot of the guest root with one share from `daemon` and `vcpus` vCPUs.
fn boot(
    m: &Machine<'_>,
    side: Side,
    daemon: &Path,
    args: &[String],
    vcpus: u32,
) -> Result<(Boot, Duration)> {
    let label = format!("{}-{vcpus}cpu", side.name());
    let dir = m.cache.join("bench").join("guest").join(&label);
    if dir.exists() {
        fs::remove_dir_all(&dir).with_context(|| format!("cannot clear {}", dir.display()))?;
    }
    fs::create_dir_all(&dir)?;
    // A fresh share in the host's temporary directory (as the load generator's), its socket
    // beside it (sun_path holds 108 bytes).
    let tmp = std::env::temp_dir().join(format!("virtiofs-bench-{}-{label}", std::process::id()));
    if tmp.exists() {
        fs::remove_dir_all(&tmp)?;
    }
    let shared = tmp.join("share");
    fs::create_dir_all(&shared)?;
    if let Some(source) = m.source {
        fs::copy(source, shared.join("src.tar"))?;
    }
    let share = Share::start(
        "bench",
        daemon,
        &shared,
        TAG,
        args,
        tmp.join("daemon.sock"),
        &dir.join("daemon.log"),
    )?;
    let pid = share.daemon.child.id();
    let mut shares = vec![share];

    let mut append: Vec<String> = KERNEL_ARGS.iter().map(|a| (*a).to_owned()).collect();
    append.extend([
        "guest_run=run-bench".to_owned(),
        format!("bench_tag={TAG}"),
        format!("bench_workloads={}", m.options.workloads.join(",")),
        format!("bench_fio_secs={}", m.options.fio_secs),
    ]);
    let qemu = guest_boot::qemu(
        m.kernel,
        m.initramfs,
        m.root,
        &append.join(" "),
        MEMORY,
        vcpus,
        &shares,
        &dir.join("qemu.log"),
    )?;
    // Generous: TCG on a loaded machine; a boot of every workload takes about 5 minutes.
    let bound = Duration::from_secs(
        10 * 60 + 4 * 60 * m.options.workloads.len() as u64 + 10 * u64::from(m.options.fio_secs),
    );
    let ticks = daemon_proc::clock_ticks();
    let mut result = Boot::default();
    let ended = guest_boot::run(
        qemu,
        &dir.join("console.log"),
        &mut shares,
        bound,
        "BENCH-DONE",
        &mut |line| {
            if line.starts_with("BENCH-") || line.starts_with("GUEST-ROOT-") {
                println!("[{label}] {line}");
            }
            result.line(line, &mut || daemon_proc::tree_cpu(pid, ticks), &mut || {
                daemon_proc::peak_rss_kib(pid)
            });
            if let Some(rest) = line.strip_prefix("GUEST-ROOT-FAIL ") {
                result.problems.push(rest.to_owned());
            }
        },
    )?;
    result.problems.extend(ended.problems);
    if !result.done {
        result
            .problems
            .push("the guest did not finish (no BENCH-DONE)".to_owned());
        let console = dir.join("console.log");
        e2e::print_unfinished_boot(&console);
    }
    let _ = fs::remove_dir_all(&tmp);
    println!(
        "[{label}] {} rows in {:.0} s; logs in {}",
        result.rows.len(),
        ended.total.as_secs_f64(),
        dir.display()
    );
    Ok((result, ended.total))
}

/// The guest part: provisions the guest root, the kernel and the source tree, boots once per
/// (round, vCPUs, daemon), prints the table and writes it under the cache.
pub(crate) fn run(
    options: &Options,
    ours: (&Path, &[String]),
    virtiofsd: (&Path, &[String]),
) -> Result<()> {
    let cache = provision::cache_dir()?;
    let _lock = e2e::RunLock::acquire(&cache)?;
    step("guest benchmarks: provisioning");
    println!("cache: {}", cache.display());
    provision::ensure_host_packages()?;
    let root = guest_root::ensure(&cache)?;
    let kernel = provision::ensure_kernel(&cache, options.kernel)?;
    let initramfs = guest_root::build_initramfs(&cache, &kernel)?;
    let needs_source = options
        .workloads
        .iter()
        .any(|w| *w == "untar" || *w == "walk");
    let source = if needs_source {
        Some(source_tar(&cache)?)
    } else {
        None
    };
    let machine = Machine {
        cache: &cache,
        kernel: &kernel,
        initramfs: &initramfs,
        root: &root,
        source: source.as_deref(),
        options,
    };
    let mut results = Results::default();
    let mut problems = Vec::new();
    for round in 1..=options.rounds {
        for &vcpus in &options.vcpus {
            for (side, (path, args)) in [(Side::Ours, ours), (Side::Virtiofsd, virtiofsd)] {
                step(&format!(
                    "guest round {round}/{}: {} vCPU(s), {}, kernel {}",
                    options.rounds,
                    vcpus,
                    side.name(),
                    kernel.label
                ));
                let (boot, _) = boot(&machine, side, path, args, vcpus)?;
                for p in &boot.problems {
                    problems.push(format!("{} {vcpus} vCPU(s): {p}", side.name()));
                }
                results.add(side, vcpus, &boot);
            }
        }
    }
    let table = results.table();
    let path = cache.join("bench").join("guest-table.txt");
    fs::write(&path, &table)?;
    println!();
    print!("{table}");
    println!("(written to {})", path.display());
    if !problems.is_empty() {
        for p in &problems {
            println!("problem: {p}");
        }
        bail!("{} problem(s) in the guest benchmarks", problems.len());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bench_lines() {
        assert_eq!(
            parse_line("BENCH-BEGIN meta-create-1000"),
            Some(Line::Begin("meta-create-1000"))
        );
        assert_eq!(
            parse_line("BENCH-END randread-4k-psync value=812.5 unit=iops errors=0"),
            Some(Line::End {
                row: "randread-4k-psync",
                value: 812.5,
                unit: Unit::Iops
            })
        );
        assert_eq!(
            parse_line("BENCH-END walk value=3.250 unit=s entries=4694"),
            Some(Line::End {
                row: "walk",
                value: 3.25,
                unit: Unit::Secs
            })
        );
        assert_eq!(
            parse_line("BENCH-FAIL untar tar: no space"),
            Some(Line::Fail("untar tar: no space"))
        );
        assert_eq!(
            parse_line("BENCH-ERROR cannot mount the share bench"),
            Some(Line::Error("cannot mount the share bench"))
        );
        assert_eq!(parse_line("BENCH-DONE 312.4"), Some(Line::Done));
        // Not figures: no value, a bad unit, a bad number, another prefix.
        assert_eq!(parse_line("BENCH-END walk unit=s"), None);
        assert_eq!(parse_line("BENCH-END walk value=1 unit=parsecs"), None);
        assert_eq!(parse_line("BENCH-END walk value=x unit=s"), None);
        assert_eq!(parse_line("BENCH-END walk value=NaN unit=s"), None);
        assert_eq!(parse_line("BENCH-BEGIN"), None);
        assert_eq!(parse_line("BENCH-INFO kernel 6.12"), None);
        assert_eq!(parse_line("[ 1.0] BENCH-BEGIN x"), None);
    }

    /// A boot fed lines, with the daemon's CPU time advancing 0.5 s per sample.
    fn fed(lines: &[&str], rss: u64) -> Boot {
        let mut boot = Boot::default();
        let mut t = Duration::ZERO;
        for line in lines {
            boot.line(
                line,
                &mut || {
                    t += Duration::from_millis(500);
                    Some(t)
                },
                &mut || Some(rss),
            );
        }
        boot
    }

    #[test]
    fn a_boot_samples_cpu_at_begin_and_end() {
        let boot = fed(
            &[
                "BENCH-BOOTED 3.1",
                "BENCH-BEGIN untar",
                "some tar noise",
                "BENCH-END untar value=12.5 unit=s",
                "BENCH-BEGIN meta-create-1000",
                "BENCH-FAIL meta-create-1000 mkdir",
                "BENCH-END broken",
                "BENCH-DONE 40",
            ],
            20_480,
        );
        assert_eq!(boot.rows.len(), 1);
        assert_eq!(boot.rows[0].0, "untar");
        assert_eq!(boot.rows[0].1.cpu, Some(Duration::from_millis(500)));
        assert_eq!(boot.peak_rss_kib, Some(20_480));
        assert!(boot.done);
        assert_eq!(boot.problems.len(), 2, "{:?}", boot.problems);
    }

    #[test]
    fn the_table_orients_ratios_and_keeps_the_best_round() {
        let mut r = Results::default();
        let ours = fed(
            &[
                "BENCH-BEGIN randread-4k-psync",
                "BENCH-END randread-4k-psync value=1000 unit=iops",
                "BENCH-BEGIN untar",
                "BENCH-END untar value=10 unit=s",
            ],
            10 * 1024,
        );
        let theirs = fed(
            &[
                "BENCH-BEGIN randread-4k-psync",
                "BENCH-END randread-4k-psync value=500 unit=iops",
                "BENCH-BEGIN untar",
                "BENCH-END untar value=20 unit=s",
            ],
            5 * 1024,
        );
        r.add(Side::Ours, 1, &ours);
        r.add(Side::Virtiofsd, 1, &theirs);
        // A worse second round changes nothing; a better one is kept.
        r.add(
            Side::Ours,
            1,
            &fed(
                &[
                    "BENCH-BEGIN untar",
                    "BENCH-END untar value=8 unit=s",
                    "BENCH-BEGIN randread-4k-psync",
                    "BENCH-END randread-4k-psync value=900 unit=iops",
                ],
                11 * 1024,
            ),
        );
        // A row only ours has.
        r.add(
            Side::Ours,
            2,
            &fed(&["BENCH-BEGIN walk", "BENCH-END walk value=2 unit=s"], 1024),
        );
        let table = r.table();
        let lines: Vec<&str> = table.lines().collect();
        assert!(lines[0].starts_with("workload"), "{table}");
        let row = |name: &str, vcpus: &str| -> Vec<String> {
            lines
                .iter()
                .find(|l| {
                    let w: Vec<&str> = l.split_whitespace().collect();
                    w.first() == Some(&name) && w.get(1) == Some(&vcpus)
                })
                .unwrap_or_else(|| panic!("no {name} {vcpus} in\n{table}"))
                .split_whitespace()
                .filter(|w| *w != "|")
                .map(str::to_owned)
                .collect()
        };
        // workload vcpus unit ours vfsd ratio ours-cpu vfsd-cpu ours-MiB vfsd-MiB
        let rr = row("randread-4k-psync", "1");
        assert_eq!(rr[2..6], ["iops", "1000", "500", "2.00"]);
        assert_eq!(rr[6..8], ["0.50", "0.50"]);
        assert_eq!(rr[8..], ["11.0", "5.0"]);
        // Times: virtiofsd/ours, and the best (lowest) of ours' rounds.
        let untar = row("untar", "1");
        assert_eq!(untar[2..6], ["s", "8.00", "20.00", "2.50"]);
        let walk = row("walk", "2");
        assert_eq!(walk[3..6], ["2.00", "-", "-"]);
        assert_eq!(walk[9], "-");
        // The rows in the order first seen.
        assert!(table.find("randread").unwrap() < table.find("untar").unwrap());
    }

    #[test]
    fn options() -> Result<()> {
        let mut o = Options::new()?;
        o.finish();
        assert_eq!(o.vcpus, [1, 2]);
        assert_eq!(o.workloads, WORKLOADS);
        assert_eq!(o.kernel.label, "6.12");
        let mut o = Options::new()?;
        o.add_workloads("walk,meta-1000")?;
        o.add_workloads("walk")?;
        o.add_vcpus("2,1,2")?;
        o.finish();
        assert_eq!(o.workloads, ["meta-1000", "walk"]);
        assert_eq!(o.vcpus, [1, 2]);
        assert!(o.add_workloads("dd").is_err());
        assert!(o.add_vcpus("0").is_err());
        assert!(o.add_vcpus("x").is_err());
        assert!(kernel("5.10").is_err());
        Ok(())
    }

    #[test]
    fn the_guest_script_knows_every_workload() {
        let script = fs::read_to_string(util::root().join("xtask/guest-root/run-bench")).unwrap();
        for w in WORKLOADS {
            assert!(
                script.contains(&format!("        {w}) ")),
                "run-bench lacks {w}"
            );
        }
    }
}
