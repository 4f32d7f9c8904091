//! `cargo xtask bench [CRATE] [--baseline NAME] [-- CRITERION-ARGS]`: the criterion benches.
//!
//! CRATE is a workspace package (`virtiofs-transport`) or its short name (`transport`); without
//! it, every package's benches run. Criterion prints each case's figures (time per iteration,
//! throughput where set); reports are kept under `target/criterion/`.
//!
//! `cargo xtask bench --against virtiofsd` is the side-by-side run instead, of our release
//! daemon and virtiofsd 1.14 (from crates.io, into the cache), in two parts:
//! - the load generator (`virtiofs-load`) drives both alternately, one fresh daemon per
//!   measurement, and prints one table with both figures and their ratio per row (`--load`:
//!   only this part, a few minutes);
//! - the guest workloads ([`guest`]): fio, metadata, untar and a stat walk in the Debian guest
//!   root of `cargo xtask fstests` under QEMU (TCG), one boot per daemon and vCPU count, the
//!   daemons alternating; one table with both figures, their ratio, the daemon's CPU seconds
//!   per row and its peak RSS (`--guest`: only this part, about 5 minutes a boot, 20 for the
//!   default four boots).
//!
//! `--poll-us N` adds our daemon with `--poll-us N` (its poll window) to the load generator's
//! part, as rows of their own (`+pollN`) beside the plain ones, with the p50 latency ratio to
//! virtiofsd; `--driver-poll-us N` makes the load generator model a guest driver that polls
//! the used ring instead of sleeping on the interrupt (for every daemon; labelled under the
//! table), which the Linux virtio-fs driver does not do; `--no-event-idx` makes it leave
//! VIRTIO_RING_F_EVENT_IDX unnegotiated (it models Linux, which negotiates it, by default).
//!
//! Without `--load` or `--guest` both parts run, the load generator first. Both daemons get
//! their own defaults (cache `auto`, their default sandbox and seccomp filter) plus the
//! `--ours-arg`s and `--virtiofsd-arg`s, in both parts.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context as _, Result, bail};

use crate::args::{Arg, Parser};
use crate::provision;
use crate::util::{self, cargo};

mod guest;

const USAGE: &str = "\
usage: cargo xtask bench [CRATE] [--baseline NAME] [--save-baseline NAME] [-- CRITERION-ARGS]
       cargo xtask bench --against virtiofsd [--load | --guest] [--rounds R]
                         [--ours-arg ARG]... [--virtiofsd-arg ARG]...
                         [--workload W]... [--depth N]... [--queues Q]... [--secs S]
                         [--poll-us N] [--driver-poll-us N] [--no-event-idx]
                         [--guest-workload W]... [--vcpus N,...] [--kernel K] [--fio-secs S]

  CRATE                 a package (virtiofs-transport) or its short name (transport)
  --baseline NAME       compare against a saved criterion baseline
  --save-baseline NAME  save this run as baseline NAME

  --against virtiofsd   our daemon and virtiofsd 1.14, alternately: the load generator, then
                        the guest workloads (both by default; about 25 minutes)
  --load                only the load generator (a few minutes)
  --guest               only the guest workloads (about 5 minutes a boot)
  --rounds R            alternations per row; the best round of each daemon is shown (default 1)
  --ours-arg ARG        one more argument for our daemon (repeatable)
  --virtiofsd-arg ARG   one more argument for virtiofsd (repeatable)

 the load generator (virtiofs-load):
  --workload W          getattr, lookup, read-4k, read-128k, write-4k, write-128k,
                        create-unlink, readdirplus (repeatable, comma lists; default all)
  --depth N             requests in flight per queue (default 1, 16, 128)
  --queues Q            request queues (default 1 and 2; virtiofsd offers one, so its rows
                        are 1-queue only)
  --secs S              measured seconds per measurement (default 3)
  --poll-us N           also run our daemon with --poll-us N (its poll window), shown as
                        rows of their own (W +pollN) with the p50 ratio to virtiofsd
  --driver-poll-us N    the load generator models a polling guest driver: it reads the used
                        ring for up to N us before sleeping on the call eventfd (every
                        daemon; Linux's virtio-fs driver sleeps at once; default 0)
  --no-event-idx        the load generator does not negotiate VIRTIO_RING_F_EVENT_IDX (by
                        default it does when offered, as Linux does, and suppresses kicks and
                        interrupts with it; without, with the rings' flags)

 the guest workloads (the Debian guest root of `cargo xtask fstests`, QEMU TCG, one share;
 a boot per daemon and vCPU count; logs in .cache/e2e/bench/guest/, the table in
 .cache/e2e/bench/guest-table.txt):
  --guest-workload W    randread-4k-psync, randread-4k-libaio16, randwrite-4k-psync,
                        randwrite-4k-libaio16, seqread-1m, seqwrite-1m (fio, O_DIRECT,
                        256 MiB file), meta-1000, meta-10000 (create, stat, ls -l, rm),
                        untar (the fstests source tree), walk (find + stat of that tree),
                        all (repeatable, comma lists; default all)
  --vcpus N,...         guest vCPUs (default 1,2)
  --kernel K            guest kernel: 6.1, 6.12, 7.3 (default 6.12)
  --fio-secs S          measured seconds of each fio job (default 15)
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
    if args
        .first()
        .is_some_and(|a| a == "--against" || a.starts_with("--against="))
    {
        return against(args);
    }
    let mut package_arg = None;
    let mut criterion: Vec<String> = Vec::new();
    let mut p = Parser::new(USAGE, args);
    while let Some(arg) = p.next()? {
        match arg {
            // Everything after `--` goes to criterion.
            Arg::Value(v) if p.ended_options() => criterion.push(v.to_owned()),
            Arg::Long(flag @ ("baseline" | "save-baseline")) => {
                criterion.extend([format!("--{flag}"), p.string()?]);
            }
            Arg::Value(v) if package_arg.is_none() => package_arg = Some(package(v)?),
            other => return Err(p.unexpected(other)),
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

/// The options of `bench --against virtiofsd`.
struct Against {
    workloads: Vec<String>,
    depths: Vec<String>,
    queues: Vec<usize>,
    secs: String,
    rounds: usize,
    /// Our daemon's poll window for the extra rows (`None`: no such rows).
    poll_us: Option<u32>,
    /// The load generator's `--driver-poll-us`.
    driver_poll_us: u32,
    /// The load generator's `--no-event-idx`.
    no_event_idx: bool,
    ours_args: Vec<String>,
    virtiofsd_args: Vec<String>,
    /// Run the load generator.
    load: bool,
    /// Run the guest workloads, with these options.
    guest: Option<guest::Options>,
}

fn parse_against(args: &[String]) -> Result<Against> {
    let mut o = Against {
        workloads: Vec::new(),
        depths: Vec::new(),
        queues: Vec::new(),
        secs: "3".to_owned(),
        rounds: 1,
        poll_us: None,
        driver_poll_us: 0,
        no_event_idx: false,
        ours_args: Vec::new(),
        virtiofsd_args: Vec::new(),
        load: false,
        guest: None,
    };
    let mut g = guest::Options::new()?;
    let mut only_guest = false;
    let mut p = Parser::new(USAGE, args);
    while let Some(arg) = p.next()? {
        match arg {
            Arg::Long("against") => {
                let v = p.string()?;
                if v != "virtiofsd" {
                    bail!("--against {v}: only virtiofsd is known");
                }
            }
            Arg::Long("workload") => o.workloads.push(p.string()?),
            Arg::Long("depth") => o.depths.push(p.string()?),
            Arg::Long("queues") => {
                for q in p.string()?.split(',') {
                    o.queues
                        .push(q.parse().with_context(|| format!("--queues {q}"))?);
                }
            }
            Arg::Long("secs") => o.secs = p.string()?,
            Arg::Long("rounds") => o.rounds = p.string()?.parse().context("--rounds")?,
            Arg::Long("poll-us") => o.poll_us = Some(p.string()?.parse().context("--poll-us")?),
            Arg::Long("driver-poll-us") => {
                o.driver_poll_us = p.string()?.parse().context("--driver-poll-us")?;
            }
            Arg::Long("no-event-idx") => o.no_event_idx = true,
            Arg::Long("ours-arg") => o.ours_args.push(p.string()?),
            Arg::Long("virtiofsd-arg") => o.virtiofsd_args.push(p.string()?),
            Arg::Long("load") => o.load = true,
            Arg::Long("guest") => only_guest = true,
            Arg::Long("guest-workload") => g.add_workloads(p.value()?)?,
            Arg::Long("vcpus") => g.add_vcpus(p.value()?)?,
            Arg::Long("kernel") => g.kernel = guest::kernel(p.value()?)?,
            Arg::Long("fio-secs") => {
                g.fio_secs = p.parse()?;
                if g.fio_secs == 0 {
                    bail!("--fio-secs: at least 1");
                }
            }
            other => return Err(p.unexpected(other)),
        }
    }
    // Neither --load nor --guest: both parts.
    if !o.load && !only_guest {
        o.load = true;
        only_guest = true;
    }
    if only_guest {
        g.finish();
        o.guest = Some(g);
    }
    if o.workloads.is_empty() {
        o.workloads.push("all".to_owned());
    }
    if o.depths.is_empty() {
        o.depths.extend(["1", "16", "128"].map(str::to_owned));
    }
    if o.queues.is_empty() {
        o.queues.extend([1, 2]);
    }
    o.rounds = o.rounds.max(1);
    if let Some(g) = &mut o.guest {
        g.rounds = o.rounds;
    }
    Ok(o)
}

/// One `RESULT` line of `virtiofs-load`.
#[derive(Clone, Debug, Default)]
struct Row {
    rps: f64,
    /// Microseconds, with the load generator's one decimal.
    p50: f64,
    p99: f64,
    cpu: f64,
    rss_kib: u64,
    errors: u64,
}

fn parse_result(line: &str) -> Option<((String, usize, usize), Row)> {
    let fields: BTreeMap<&str, &str> = line
        .strip_prefix("RESULT ")?
        .split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .collect();
    let key = (
        (*fields.get("workload")?).to_owned(),
        fields.get("queues")?.parse().ok()?,
        fields.get("depth")?.parse().ok()?,
    );
    Some((
        key,
        Row {
            rps: fields.get("rps")?.parse().ok()?,
            p50: fields.get("p50_us")?.parse().ok()?,
            p99: fields.get("p99_us")?.parse().ok()?,
            cpu: fields.get("cpu_us_per_req")?.parse().ok()?,
            rss_kib: fields.get("peak_rss_kib")?.parse().ok()?,
            errors: fields.get("errors")?.parse().ok()?,
        },
    ))
}

type Results = BTreeMap<(String, usize, usize), Row>;

/// Runs the load generator once and keeps the best round of each row in `into`.
fn load(
    load_bin: &Path,
    daemon: &Path,
    label: &str,
    args: &[String],
    o: &Against,
    queues: usize,
    into: &mut Results,
) -> Result<()> {
    let mut cmd = util::cmd(load_bin);
    cmd.arg("--daemon").arg(daemon).args(["--label", label]);
    cmd.arg(format!("--queues={queues}"))
        .arg(format!("--secs={}", o.secs))
        .arg(format!("--driver-poll-us={}", o.driver_poll_us));
    if o.no_event_idx {
        cmd.arg("--no-event-idx");
    }
    for w in &o.workloads {
        cmd.arg(format!("--workload={w}"));
    }
    for d in &o.depths {
        cmd.arg(format!("--depth={d}"));
    }
    // Our daemon offers one request queue unless told otherwise (virtiofsd offers one and
    // runs only with one).
    if queues > 1 {
        cmd.arg(format!("--daemon-arg=--queues={queues}"));
    }
    for a in args {
        cmd.arg(format!("--daemon-arg={a}"));
    }
    println!("$ {}", util::display(&cmd));
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot start {}", load_bin.display()))?;
    let stdout = child.stdout.take().context("no stdout")?;
    for line in std::io::BufRead::lines(std::io::BufReader::new(stdout)) {
        let line = line?;
        let line = line.as_str();
        if let Some(rest) = line.strip_prefix("FAILED ") {
            eprintln!("{label}: a measurement failed: {rest}");
        } else if !line.starts_with("RESULT ") {
            println!("{line}");
        }
        if let Some((key, row)) = parse_result(line) {
            let best = into.entry(key).or_default();
            if row.rps > best.rps {
                *best = row;
            }
        }
    }
    let status = child.wait()?;
    if !status.success() {
        eprintln!("{label}: virtiofs-load exited with {status}");
    }
    Ok(())
}

/// `cargo xtask bench --against virtiofsd ...`.
fn against(args: &[String]) -> Result<()> {
    let o = parse_against(args)?;
    util::step(if o.load {
        "build: the release daemon and the load generator"
    } else {
        "build: the release daemon"
    });
    let mut cmd = cargo();
    cmd.args(["build", "--locked", "--release", "-p", "virtiofs-device"]);
    util::run(cmd)?;
    if o.load {
        util::build_frontend_bin("virtiofs-load")?;
    }
    let release = util::root().join("target/release");
    let ours = release.join("virtiofs-device");
    let virtiofsd = provision::ensure_stand_in(&provision::cache_dir()?)?;
    if o.load {
        against_load(&o, &release.join("virtiofs-load"), &ours, &virtiofsd)?;
    }
    if let Some(g) = &o.guest {
        guest::run(g, (&ours, &o.ours_args), (&virtiofsd, &o.virtiofsd_args))?;
    }
    Ok(())
}

/// The load-generator part: every round, queue count and daemon, then the table.
fn against_load(o: &Against, load_bin: &Path, ours: &Path, virtiofsd: &Path) -> Result<()> {
    let (mut mine, mut polled, mut theirs) = (Results::new(), Results::new(), Results::new());
    let poll_args = o.poll_us.map(|us| {
        let mut args = o.ours_args.clone();
        args.push(format!("--poll-us={us}"));
        args
    });
    for round in 1..=o.rounds {
        for &q in &o.queues {
            util::step(&format!("round {round}/{}: {q} queue(s)", o.rounds));
            load(load_bin, ours, "ours", &o.ours_args, o, q, &mut mine)?;
            if let Some(args) = &poll_args {
                load(load_bin, ours, "ours+poll", args, o, q, &mut polled)?;
            }
            if q == 1 {
                load(
                    load_bin,
                    virtiofsd,
                    "virtiofsd",
                    &o.virtiofsd_args,
                    o,
                    q,
                    &mut theirs,
                )?;
            }
        }
    }
    let polled = o.poll_us.map(|us| (format!("+poll{us}"), polled));
    print_table(
        &mine,
        polled.as_ref().map(|(label, r)| (label.as_str(), r)),
        &theirs,
    );
    if o.no_event_idx {
        println!(
            "(the load generator did not negotiate EVENT_IDX: kicks and interrupts were \
             suppressed with the rings' flags only)"
        );
    }
    if o.driver_poll_us > 0 {
        println!(
            "(the load generator polled the used ring for up to {} us before sleeping on the \
             call eventfd: a polling guest driver, not Linux's)",
            o.driver_poll_us
        );
    }
    Ok(())
}

/// The table: a row per workload, queue count and depth with our figures beside virtiofsd's,
/// and with `polled` (its label and results) a row of our daemon with its poll window below.
fn print_table(mine: &Results, polled: Option<(&str, &Results)>, theirs: &Results) {
    println!();
    println!(
        "{:<20} {:>2} {:>5} | {:>9} {:>9} {:>6} | {:>13} {:>13} {:>5} | {:>11} {:>11} | {:>9}",
        "workload",
        "q",
        "depth",
        "ours/s",
        "vfsd/s",
        "ratio",
        "ours p50/p99",
        "vfsd p50/p99",
        "p50 x",
        "ours us/req",
        "vfsd us/req",
        "RSS MiB"
    );
    for (key, m) in mine {
        print_row(key, "", m, theirs.get(key));
        if let Some(p) = polled.and_then(|(label, r)| r.get(key).map(|p| (label, p))) {
            print_row(key, p.0, p.1, theirs.get(key));
        }
    }
    println!(
        "(ratio: ours/virtiofsd requests per second; p50 x: ours/virtiofsd p50 latency; latency \
         in us; CPU of the daemon per request)"
    );
}

/// One row of [`print_table`]: `m` (ours, `variant` after the workload's name) beside `t`.
fn print_row(key: &(String, usize, usize), variant: &str, m: &Row, t: Option<&Row>) {
    let (workload, q, depth) = key;
    let workload = if variant.is_empty() {
        workload.clone()
    } else {
        format!("{workload} {variant}")
    };
    let dash = || "-".to_owned();
    let ratio = t.map_or_else(dash, |t| format!("{:.2}", m.rps / t.rps.max(1e-9)));
    let vrps = t.map_or_else(dash, |t| format!("{:.0}", t.rps));
    let vlat = t.map_or_else(dash, |t| format!("{:.1}/{:.0}", t.p50, t.p99));
    let p50x = t.map_or_else(dash, |t| format!("{:.2}", m.p50 / t.p50.max(0.1)));
    let vcpu = t.map_or_else(dash, |t| format!("{:.1}", t.cpu));
    let rss = t.map_or_else(
        || format!("{}", m.rss_kib / 1024),
        |t| format!("{}/{}", m.rss_kib / 1024, t.rss_kib / 1024),
    );
    let errors = m.errors + t.map_or(0, |t| t.errors);
    println!(
        "{workload:<20} {q:>2} {depth:>5} | {:>9.0} {vrps:>9} {ratio:>6} | {:>13} {vlat:>13} {p50x:>5} | {:>11.1} {vcpu:>11} | {rss:>9}{}",
        m.rps,
        format!("{:.1}/{:.0}", m.p50, m.p99),
        m.cpu,
        if errors > 0 {
            format!("  ({errors} errors)")
        } else {
            String::new()
        }
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Against> {
        let args: Vec<String> = ["--against", "virtiofsd"]
            .iter()
            .chain(args)
            .map(|a| (*a).to_owned())
            .collect();
        parse_against(&args)
    }

    #[test]
    fn the_parts() -> Result<()> {
        // Both by default, with the guest part's defaults.
        let o = parse(&[])?;
        assert!(o.load);
        let g = o.guest.context("the guest part")?;
        assert_eq!(g.vcpus, [1, 2]);
        assert_eq!(g.workloads, guest::WORKLOADS);
        assert_eq!(g.rounds, 1);
        let o = parse(&["--load"])?;
        assert!(o.load && o.guest.is_none());
        let o = parse(&[
            "--guest",
            "--vcpus=1",
            "--guest-workload",
            "untar,meta-1000",
            "--kernel=7.3",
            "--fio-secs=5",
            "--rounds=2",
        ])?;
        assert!(!o.load);
        let g = o.guest.context("the guest part")?;
        assert_eq!(g.vcpus, [1]);
        assert_eq!(g.workloads, ["meta-1000", "untar"]);
        assert_eq!((g.kernel.label, g.fio_secs, g.rounds), ("7.3", 5, 2));
        let o = parse(&["--guest", "--load"])?;
        assert!(o.load && o.guest.is_some());
        assert!(parse(&["--guest-workload=fsync"]).is_err());
        assert!(parse(&["--fio-secs=0"]).is_err());
        assert!(parse(&["--kernel=4.19"]).is_err());
        let o = parse(&["--load", "--poll-us=50", "--driver-poll-us", "20"])?;
        assert_eq!((o.poll_us, o.driver_poll_us), (Some(50), 20));
        assert_eq!(parse(&["--load"])?.poll_us, None);
        assert!(!parse(&["--load"])?.no_event_idx);
        assert!(parse(&["--load", "--no-event-idx"])?.no_event_idx);
        assert!(parse(&["--poll-us=x"]).is_err());
        Ok(())
    }
}
