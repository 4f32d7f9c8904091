//! `cargo xtask bench [CRATE] [--baseline NAME] [-- CRITERION-ARGS]`: the criterion benches.
//!
//! CRATE is a workspace package (`virtiofs-transport`) or its short name (`transport`); without
//! it, every package's benches run. Criterion prints each case's figures (time per iteration,
//! throughput where set); reports are kept under `target/criterion/`.
//!
//! `cargo xtask bench --against virtiofsd` is the side-by-side run instead: the load generator
//! (`virtiofs-load`) drives our release daemon and virtiofsd (from crates.io, into the cache)
//! alternately, one fresh daemon per measurement, and prints one table with both figures and
//! their ratio per row.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context as _, Result, bail};

use crate::args::{Arg, Parser};
use crate::provision;
use crate::util::{self, cargo};

const USAGE: &str = "\
usage: cargo xtask bench [CRATE] [--baseline NAME] [--save-baseline NAME] [-- CRITERION-ARGS]
       cargo xtask bench --against virtiofsd [--workload W]... [--depth N]... [--queues Q]...
                         [--secs S] [--rounds R] [--ours-arg ARG]... [--virtiofsd-arg ARG]...

  CRATE                 a package (virtiofs-transport) or its short name (transport)
  --baseline NAME       compare against a saved criterion baseline
  --save-baseline NAME  save this run as baseline NAME

  --against virtiofsd   the load generator against our daemon and virtiofsd 1.14, alternately
  --workload W          getattr, lookup, read-4k, read-128k, write-4k, write-128k,
                        create-unlink, readdirplus (repeatable, comma lists; default all)
  --depth N             requests in flight per queue (default 1, 16, 128)
  --queues Q            request queues (default 1 and 2; virtiofsd offers one, so its rows
                        are 1-queue only)
  --secs S              measured seconds per measurement (default 3)
  --rounds R            alternations per row; the best round of each daemon is shown (default 1)
  --ours-arg ARG        one more argument for our daemon (repeatable)
  --virtiofsd-arg ARG   one more argument for virtiofsd (repeatable)
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
    ours_args: Vec<String>,
    virtiofsd_args: Vec<String>,
}

fn parse_against(args: &[String]) -> Result<Against> {
    let mut o = Against {
        workloads: Vec::new(),
        depths: Vec::new(),
        queues: Vec::new(),
        secs: "3".to_owned(),
        rounds: 1,
        ours_args: Vec::new(),
        virtiofsd_args: Vec::new(),
    };
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
            Arg::Long("ours-arg") => o.ours_args.push(p.string()?),
            Arg::Long("virtiofsd-arg") => o.virtiofsd_args.push(p.string()?),
            other => return Err(p.unexpected(other)),
        }
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
    Ok(o)
}

/// One `RESULT` line of `virtiofs-load`.
#[derive(Clone, Debug, Default)]
struct Row {
    rps: f64,
    p50: u64,
    p99: u64,
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
        .arg(format!("--secs={}", o.secs));
    for w in &o.workloads {
        cmd.arg(format!("--workload={w}"));
    }
    for d in &o.depths {
        cmd.arg(format!("--depth={d}"));
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
    util::step("build: the release daemon and the load generator");
    let mut cmd = cargo();
    cmd.args(["build", "--locked", "--release", "-p", "virtiofs-device"]);
    util::run(cmd)?;
    let mut cmd = cargo();
    cmd.args([
        "build",
        "--locked",
        "--release",
        "-p",
        "virtiofs-frontend",
        "--bin",
        "virtiofs-load",
    ]);
    util::run(cmd)?;
    let release = util::root().join("target/release");
    let ours = release.join("virtiofs-device");
    let load_bin = release.join("virtiofs-load");
    let virtiofsd = provision::ensure_stand_in(&provision::cache_dir()?)?;

    let (mut mine, mut theirs) = (Results::new(), Results::new());
    for round in 1..=o.rounds {
        for &q in &o.queues {
            util::step(&format!("round {round}/{}: {q} queue(s)", o.rounds));
            load(&load_bin, &ours, "ours", &o.ours_args, &o, q, &mut mine)?;
            if q == 1 {
                load(
                    &load_bin,
                    &virtiofsd,
                    "virtiofsd",
                    &o.virtiofsd_args,
                    &o,
                    q,
                    &mut theirs,
                )?;
            }
        }
    }
    print_table(&mine, &theirs);
    Ok(())
}

fn print_table(mine: &Results, theirs: &Results) {
    println!();
    println!(
        "{:<14} {:>2} {:>5} | {:>9} {:>9} {:>6} | {:>13} {:>13} | {:>11} {:>11} | {:>9}",
        "workload",
        "q",
        "depth",
        "ours/s",
        "vfsd/s",
        "ratio",
        "ours p50/p99",
        "vfsd p50/p99",
        "ours us/req",
        "vfsd us/req",
        "RSS MiB"
    );
    for (key, m) in mine {
        let (workload, q, depth) = key;
        let t = theirs.get(key);
        let dash = || "-".to_owned();
        let ratio = t.map_or_else(dash, |t| format!("{:.2}", m.rps / t.rps.max(1e-9)));
        let vrps = t.map_or_else(dash, |t| format!("{:.0}", t.rps));
        let vlat = t.map_or_else(dash, |t| format!("{}/{}", t.p50, t.p99));
        let vcpu = t.map_or_else(dash, |t| format!("{:.1}", t.cpu));
        let rss = t.map_or_else(
            || format!("{}", m.rss_kib / 1024),
            |t| format!("{}/{}", m.rss_kib / 1024, t.rss_kib / 1024),
        );
        let errors = m.errors + t.map_or(0, |t| t.errors);
        println!(
            "{workload:<14} {q:>2} {depth:>5} | {:>9.0} {vrps:>9} {ratio:>6} | {:>13} {vlat:>13} | {:>11.1} {vcpu:>11} | {rss:>9}{}",
            m.rps,
            format!("{}/{}", m.p50, m.p99),
            m.cpu,
            if errors > 0 {
                format!("  ({errors} errors)")
            } else {
                String::new()
            }
        );
    }
    println!(
        "(ratio: ours/virtiofsd requests per second; latency in us; CPU of the daemon per request)"
    );
}
