//! A group too long for one sitting (`--group quick` takes hours a daemon under TCG) as a
//! resumable campaign of shards: `--shard I/N` runs the I-th of N deterministic parts of the
//! group's test list, and `--report` merges what the stored shards found.
//!
//! The list is the one `./check -virtiofs -g G` would run, read on the host from the built
//! tree's `tests/<dir>/group.list` files, sorted; test `k` (from 0) goes to shard `k % N + 1`,
//! so every shard mixes cheap and expensive areas.
//!
//! A campaign outlives a checkout: what it found is recorded in the repository, under
//! `xtask/fstests-campaign/<groups>-<N>/`, so it can grow across sittings and machines and be
//! read without re-running it. Only the bulky output of a boot stays in the cache:
//!
//! ```text
//! xtask/fstests-campaign/<groups>-<N>/      (committed)
//!   tests.txt                               the group's list when the campaign started
//!   <kernel>-<daemon>/shard-<I>/table.txt   one boot's results: <test> <status> <secs> [reason]
//!   <kernel>-<daemon>/shard-<I>/run.txt     its wall time, check's time, its problems
//!   report-<kernel>.txt                     the merged side-by-side table (--report)
//! <cache>/fstests/campaign-<groups>-<N>/<kernel>-<daemon>/shard-<I>/
//!                                           the boot itself: console.log, results/
//! ```
//!
//! A shard is recorded when its boot has ended, so a shard interrupted half-way is not, and
//! `--shard all/N` (every shard not recorded yet) runs it again.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};

use super::{Run, Status, TestResult, side_by_side};
use crate::provision::{self, Kernel};

/// Which shards `--shard` picked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Pick {
    /// Every shard that has not run yet (per kernel and daemon).
    All,
    /// These shards (1-based), run again even when they already ran.
    List(Vec<usize>),
}

/// `--shard I/N`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Shards {
    pub(super) pick: Pick,
    pub(super) of: usize,
}

impl Shards {
    /// Parses `I/N`, `I,J,K-L/N`, `all/N`, or `N` alone (all of N).
    pub(super) fn parse(text: &str) -> Result<Shards> {
        let (pick, of) = text.rsplit_once('/').unwrap_or(("all", text));
        let of: usize = of
            .parse()
            .ok()
            .filter(|n| *n >= 1)
            .with_context(|| format!("--shard {text}: N must be a number from 1"))?;
        if pick == "all" {
            return Ok(Shards {
                pick: Pick::All,
                of,
            });
        }
        let mut list = Vec::new();
        for part in pick.split(',').filter(|p| !p.is_empty()) {
            let (a, b) = part.split_once('-').unwrap_or((part, part));
            let (Ok(a), Ok(b)) = (a.parse::<usize>(), b.parse::<usize>()) else {
                bail!("--shard {text}: `{part}` is not a shard number or a range");
            };
            if a < 1 || a > b || b > of {
                bail!("--shard {text}: `{part}` is not within 1..={of}");
            }
            for i in a..=b {
                if !list.contains(&i) {
                    list.push(i);
                }
            }
        }
        if list.is_empty() {
            bail!("--shard {text}: no shard named");
        }
        Ok(Shards {
            pick: Pick::List(list),
            of,
        })
    }
}

/// The tests of `groups` as `./check -virtiofs -g` selects them: a group `G` is looked up in
/// `tests/generic/group.list` (and `tests/virtiofs/`, when fstests has one), `DIR/G` in
/// `tests/DIR/group.list`. Sorted, without duplicates.
pub(super) fn group_tests(fstests: &Path, groups: &[String]) -> Result<Vec<String>> {
    let mut tests = Vec::new();
    for group in groups {
        let (dirs, name) = match group.split_once('/') {
            Some((dir, name)) => (vec![dir.to_owned()], name),
            None => (
                vec!["generic".to_owned(), "virtiofs".to_owned()],
                group.as_str(),
            ),
        };
        let mut found = false;
        for dir in dirs {
            let path = fstests.join("tests").join(&dir).join("group.list");
            let Ok(text) = fs::read_to_string(&path) else {
                continue;
            };
            found = true;
            tests.extend(
                group_list_tests(&text, name)
                    .into_iter()
                    .map(|t| format!("{dir}/{t}")),
            );
        }
        if !found {
            bail!(
                "group `{group}`: no group.list for it under {}",
                fstests.join("tests").display()
            );
        }
    }
    tests.sort();
    tests.dedup();
    if tests.is_empty() {
        bail!("the groups {} hold no test", groups.join(","));
    }
    Ok(tests)
}

/// The tests of one `group.list` (`<name> <group>...` a line, `#` comments) in `group`.
fn group_list_tests(text: &str, group: &str) -> Vec<String> {
    text.lines()
        .filter_map(|line| {
            let line = line.split('#').next().unwrap_or("");
            let mut words = line.split_whitespace();
            let name = words.next()?;
            words.any(|w| w == group).then(|| name.to_owned())
        })
        .collect()
}

/// The tests of shard `i` (1-based) of `of`.
fn shard_of(tests: &[String], i: usize, of: usize) -> Vec<String> {
    tests
        .iter()
        .enumerate()
        .filter(|(k, _)| k % of + 1 == i)
        .map(|(_, t)| t.clone())
        .collect()
}

/// Where campaigns are recorded, relative to the repository root.
pub(super) const RECORD_DIR: &str = "xtask/fstests-campaign";

/// A campaign's name: `<groups>-<N>`.
fn campaign_name(groups: &[String], of: usize) -> String {
    let name: Vec<String> = groups.iter().map(|g| g.replace('/', "_")).collect();
    format!("{}-{of}", name.join("+"))
}

/// A campaign's record: `<repository>/xtask/fstests-campaign/<groups>-<N>`.
fn record_dir(repo: &Path, groups: &[String], of: usize) -> PathBuf {
    repo.join(RECORD_DIR).join(campaign_name(groups, of))
}

/// An open campaign (its list fixed by `tests.txt`).
#[derive(Debug)]
pub(super) struct Campaign {
    /// The record, in the repository.
    pub(super) record: PathBuf,
    /// The boots' output, in the cache.
    boots: PathBuf,
    of: usize,
    tests: Vec<String>,
    /// What our daemon was built from: `git describe --always --dirty` of the tree at
    /// `open` (the release build a boot uses is rebuilt from it), recorded in each `run.txt`.
    revision: String,
}

impl Campaign {
    /// Opens (or starts) the campaign of `groups` in `of` shards, with the list of the built
    /// tree `fstests`. Fails when the stored list is not that one: results of another split
    /// must not be merged.
    pub(super) fn open(
        repo: &Path,
        cache: &Path,
        groups: &[String],
        of: usize,
        fstests: &Path,
    ) -> Result<Campaign> {
        let tests = group_tests(fstests, groups)?;
        if of > tests.len() {
            bail!("--shard: {} tests cannot make {of} shards", tests.len());
        }
        let dir = record_dir(repo, groups, of);
        fs::create_dir_all(&dir)?;
        let list_path = dir.join("tests.txt");
        let list = tests.join("\n") + "\n";
        match fs::read_to_string(&list_path) {
            Ok(stored) if stored != list => bail!(
                "{}: the group's test list changed since this campaign started (another \
                 fstests build?); remove {} to start it afresh",
                list_path.display(),
                dir.display()
            ),
            Ok(_) => {}
            Err(_) => fs::write(&list_path, &list)?,
        }
        let boots = cache
            .join("fstests")
            .join(format!("campaign-{}", campaign_name(groups, of)));
        Ok(Campaign {
            record: dir,
            boots,
            of,
            tests,
            revision: revision(repo),
        })
    }

    /// Shard `i`'s tests.
    pub(super) fn tests(&self, i: usize) -> Vec<String> {
        shard_of(&self.tests, i, self.of)
    }

    /// The shards `pick` means for one kernel and daemon, in order.
    pub(super) fn picked(&self, pick: &Pick, kernel: &str, daemon: &str) -> Vec<usize> {
        match pick {
            Pick::List(list) => list.clone(),
            Pick::All => (1..=self.of)
                .filter(|i| !self.record_of(*i, kernel, daemon).join(RUN_FILE).is_file())
                .collect(),
        }
    }

    /// Prints the campaign's size and what `pick` would run (`--provision-only`).
    pub(super) fn describe(&self, pick: &Pick, daemons: &[String], kernels: &[Kernel]) {
        println!(
            "campaign {}: {} tests in {} shards",
            self.record.display(),
            self.tests.len(),
            self.of
        );
        for kernel in kernels {
            for daemon in daemons {
                let picked = self.picked(pick, kernel.label, daemon);
                println!(
                    "kernel {} daemon {daemon}: would run shards {}",
                    kernel.label,
                    ranges(&picked)
                );
            }
        }
        if let Pick::List(list) = pick {
            for i in list {
                println!("shard {i}: {}", self.tests(*i).join(" "));
            }
        }
    }

    /// Where shard `i`'s boot on `kernel` with `daemon` writes: `<cache>/…/<kernel>-<daemon>/shard-<i>`.
    pub(super) fn shard_dir(&self, i: usize, kernel: &str, daemon: &str) -> PathBuf {
        self.boots
            .join(format!("{kernel}-{daemon}"))
            .join(format!("shard-{i}"))
    }

    /// Shard `i`'s record: `<record>/<kernel>-<daemon>/shard-<i>`.
    fn record_of(&self, i: usize, kernel: &str, daemon: &str) -> PathBuf {
        self.record
            .join(format!("{kernel}-{daemon}"))
            .join(format!("shard-{i}"))
    }

    /// Records shard `i`'s ended boot `run`: its `table.txt` and a `run.txt`, in that order
    /// (`run.txt` marks the record complete).
    pub(super) fn record(&self, i: usize, run: &Run) -> Result<()> {
        let dest = self.record_of(i, run.kernel, &run.daemon);
        fs::create_dir_all(&dest)?;
        let table = fs::read_to_string(run.dir.join(TABLE_FILE)).unwrap_or_default();
        fs::write(dest.join(TABLE_FILE), table)?;
        fs::write(dest.join(RUN_FILE), run_text(run, &self.revision))?;
        Ok(())
    }
}

/// The file that marks a shard's boot as ended (and recorded).
const RUN_FILE: &str = "run.txt";

/// A boot's results, one test a line.
const TABLE_FILE: &str = "table.txt";

/// `git describe --always --dirty` of `repo`, or `unknown` outside a git checkout.
fn revision(repo: &Path) -> String {
    std::process::Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(["describe", "--always", "--dirty"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map_or_else(|| "unknown".to_owned(), |s| s.trim().to_owned())
}

/// `run.txt`: the boot's wall time, check's time, which daemon build ran (ours: the tree's
/// `revision`; virtiofsd: its crates.io version), and its problems.
fn run_text(run: &Run, revision: &str) -> String {
    let built = if run.daemon == crate::provision::STAND_IN.0 {
        crate::provision::STAND_IN.1
    } else {
        revision
    };
    let mut text = format!(
        "total {}\ncheck {}\nbuild {}\n",
        run.total.as_secs(),
        run.check_secs
            .map_or_else(|| "-".to_owned(), |s| s.to_string()),
        built
    );
    for p in &run.problems {
        let _ = writeln!(text, "problem {p}");
    }
    text
}

/// Parses a `table.txt` line: `<test> <status> <secs|-> [reason...]`.
fn parse_table_line(line: &str) -> Option<TestResult> {
    if line.starts_with('#') {
        return None;
    }
    let (name, rest) = word(line)?;
    let (status, rest) = word(rest)?;
    let status = match status {
        "pass" => Status::Pass,
        "fail" => Status::Fail,
        "notrun" => Status::NotRun,
        _ => return None,
    };
    let (secs, reason) = word(rest).unwrap_or(("-", ""));
    Some(TestResult {
        name: name.to_owned(),
        status,
        secs: secs.parse().ok(),
        reason: reason.trim().to_owned(),
    })
}

/// The first word of `text` and what follows it.
fn word(text: &str) -> Option<(&str, &str)> {
    let text = text.trim_start();
    if text.is_empty() {
        return None;
    }
    let end = text.find(char::is_whitespace).unwrap_or(text.len());
    Some(text.split_at(end))
}

/// One stored (kernel, daemon) of a campaign: its shards merged into one [`Run`].
struct Merged {
    run: Run,
    shards: Vec<usize>,
    /// The shard each test ran in.
    shard_of_test: BTreeMap<String, usize>,
}

impl Merged {
    /// The same run with only the tests of `shards`.
    fn only(&self, shards: &[usize]) -> Run {
        let r = &self.run;
        Run {
            kernel: r.kernel,
            daemon: r.daemon.clone(),
            tests: r
                .tests
                .iter()
                .filter(|t| {
                    self.shard_of_test
                        .get(&t.name)
                        .is_some_and(|i| shards.contains(i))
                })
                .cloned()
                .collect(),
            problems: Vec::new(),
            total: r.total,
            check_secs: None,
            dir: r.dir.clone(),
        }
    }
}

/// Reads every ended shard under `<campaign>/<kernel>-<daemon>/`.
fn read_merged(dir: &Path, kernel: &'static str, daemon: &str) -> Result<Merged> {
    let mut tests = Vec::new();
    let mut problems = Vec::new();
    let mut shards = Vec::new();
    let mut shard_of_test = BTreeMap::new();
    let mut total = 0;
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        let Some(i) = path
            .file_name()
            .and_then(|n| n.to_str()?.strip_prefix("shard-")?.parse::<usize>().ok())
        else {
            continue;
        };
        let Ok(run_text) = fs::read_to_string(path.join(RUN_FILE)) else {
            continue;
        };
        shards.push(i);
        for line in run_text.lines() {
            if let Some(secs) = line.strip_prefix("total ") {
                total += secs.trim().parse::<u64>().unwrap_or(0);
            } else if let Some(p) = line.strip_prefix("problem ") {
                problems.push(format!("shard {i}: {p}"));
            }
        }
        let table = fs::read_to_string(path.join(TABLE_FILE)).unwrap_or_default();
        for t in table.lines().filter_map(parse_table_line) {
            shard_of_test.insert(t.name.clone(), i);
            tests.push(t);
        }
    }
    shards.sort_unstable();
    tests.sort_by(|a: &TestResult, b| a.name.cmp(&b.name));
    Ok(Merged {
        run: Run {
            kernel,
            daemon: daemon.to_owned(),
            tests,
            problems,
            total: Duration::from_secs(total),
            check_secs: None,
            dir: dir.to_owned(),
        },
        shards,
        shard_of_test,
    })
}

/// `--report`: the stored shards of the campaign of `groups` in `of` shards, merged, for
/// every kernel and daemon that has some, side by side per kernel (written in full to
/// `report-<kernel>.txt`). Returns the tests ours fails and virtiofsd passes.
pub(super) fn report(repo: &Path, groups: &[String], of: usize) -> Result<Vec<String>> {
    let dir = record_dir(repo, groups, of);
    let list = fs::read_to_string(dir.join("tests.txt")).with_context(|| {
        format!(
            "no campaign in {} (run some shards first: --shard I/{of})",
            dir.display()
        )
    })?;
    let count = list.lines().filter(|l| !l.is_empty()).count();
    let mut by_kernel: BTreeMap<usize, Vec<Merged>> = BTreeMap::new();
    let mut entries: Vec<PathBuf> = fs::read_dir(&dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    entries.sort();
    for path in entries {
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let Some((k, spec)) = provision::KERNELS
            .iter()
            .enumerate()
            .find(|(_, k)| name.starts_with(&format!("{}-", k.label)))
        else {
            continue;
        };
        let daemon = &name[spec.label.len() + 1..];
        let merged = read_merged(&path, spec.label, daemon)?;
        if !merged.shards.is_empty() {
            by_kernel.entry(k).or_default().push(merged);
        }
    }
    if by_kernel.is_empty() {
        bail!("no shard of {} has ended yet", dir.display());
    }
    let mut bugs = Vec::new();
    for merged in by_kernel.values_mut() {
        // ours first, virtiofsd second, the others after.
        merged.sort_by_key(|m| match m.run.daemon.as_str() {
            "ours" => 0,
            "virtiofsd" => 1,
            _ => 2,
        });
        let kernel = merged[0].run.kernel;
        println!(
            "\ncampaign {} ({count} tests in {of} shards), kernel {kernel}",
            groups.join(",")
        );
        for m in merged.iter() {
            println!(
                "  {:<10} {:>3}/{of} shards ({}): {} tests, {} passed, {} failed, {} not run; \
                 {:.1} h of boots",
                m.run.daemon,
                m.shards.len(),
                ranges(&m.shards),
                m.run.tests.len(),
                m.run.count(Status::Pass),
                m.run.count(Status::Fail),
                m.run.count(Status::NotRun),
                m.run.total.as_secs_f64() / 3600.0
            );
            for p in &m.run.problems {
                println!("    problem: {p}");
            }
        }
        // Side by side only on the shards every daemon has run: the fair comparison.
        let common: Vec<usize> = merged[0]
            .shards
            .iter()
            .copied()
            .filter(|i| merged.iter().all(|m| m.shards.contains(i)))
            .collect();
        if merged.len() > 1 {
            println!(
                "  compared on the {} shards every daemon ran ({})",
                common.len(),
                ranges(&common)
            );
        }
        let runs: Vec<Run> = merged.iter().map(|m| m.only(&common)).collect();
        let runs: Vec<&Run> = runs.iter().collect();
        let path = dir.join(format!("report-{kernel}.txt"));
        bugs.extend(side_by_side(&runs, kernel, &path)?);
    }
    Ok(bugs)
}

/// `1-3,7,9-10`.
fn ranges(list: &[usize]) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < list.len() {
        let start = list[i];
        let mut end = start;
        while i + 1 < list.len() && list[i + 1] == end + 1 {
            i += 1;
            end = list[i];
        }
        out.push(if start == end {
            start.to_string()
        } else {
            format!("{start}-{end}")
        });
        i += 1;
    }
    out.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_shards() {
        assert_eq!(
            Shards::parse("3/40").unwrap(),
            Shards {
                pick: Pick::List(vec![3]),
                of: 40
            }
        );
        assert_eq!(Shards::parse("all/40").unwrap().pick, Pick::All);
        assert_eq!(Shards::parse("40").unwrap().pick, Pick::All);
        assert_eq!(
            Shards::parse("1,4-6,5/10").unwrap().pick,
            Pick::List(vec![1, 4, 5, 6])
        );
        for bad in ["0/4", "5/4", "1/0", "x/4", "3-2/4", "/4", "1/"] {
            assert!(Shards::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn shards_cover_the_list_once() {
        let tests: Vec<String> = (1..=23).map(|i| format!("generic/{i:03}")).collect();
        let mut all: Vec<String> = (1..=5).flat_map(|i| shard_of(&tests, i, 5)).collect();
        let sizes: Vec<usize> = (1..=5).map(|i| shard_of(&tests, i, 5).len()).collect();
        assert_eq!(sizes, [5, 5, 5, 4, 4]);
        all.sort();
        assert_eq!(all, tests);
        assert_eq!(shard_of(&tests, 2, 5)[..2], ["generic/002", "generic/007"]);
    }

    #[test]
    fn reads_group_lists() {
        let text = "# QA groups control file\n\n001 rw dir auto quick\n002 auto\n\
                    003 auto quick # trailing\n004 auto #quick\n005 quickly auto\n";
        assert_eq!(group_list_tests(text, "quick"), ["001", "003"]);
        assert_eq!(group_list_tests(text, "auto").len(), 5);
    }

    #[test]
    fn table_lines_round_trip() {
        let t =
            parse_table_line("generic/004     notrun     -  O_TMPFILE is not supported").unwrap();
        assert_eq!(t.status, Status::NotRun);
        assert_eq!(t.reason, "O_TMPFILE is not supported");
        let t = parse_table_line("generic/001     pass      12  ").unwrap();
        assert_eq!((t.status, t.secs), (Status::Pass, Some(12)));
        assert!(parse_table_line("# kernel 6.12 daemon ours").is_none());
        assert!(parse_table_line("generic/001 maybe 1").is_none());
    }

    #[test]
    fn tables_parse_back() {
        let tests = vec![
            TestResult {
                name: "generic/001".to_owned(),
                status: Status::Pass,
                secs: Some(12),
                reason: String::new(),
            },
            TestResult {
                name: "generic/1000".to_owned(),
                status: Status::NotRun,
                secs: None,
                reason: "Reflink not supported by test filesystem type: virtiofs".to_owned(),
            },
            TestResult {
                name: "generic/003".to_owned(),
                status: Status::Fail,
                secs: None,
                reason: String::new(),
            },
        ];
        let run = Run {
            kernel: "6.12",
            daemon: "ours".to_owned(),
            tests: tests.clone(),
            problems: Vec::new(),
            total: Duration::from_secs(1),
            check_secs: None,
            dir: PathBuf::new(),
        };
        let parsed: Vec<TestResult> = super::super::table(&run)
            .lines()
            .filter_map(parse_table_line)
            .collect();
        assert_eq!(parsed, tests);
    }

    #[test]
    fn an_ended_shard_is_recorded_and_not_run_again() {
        let base = std::env::temp_dir().join(format!("xtask-campaign-{}", std::process::id()));
        let _ = fs::remove_dir_all(&base);
        let (repo, cache, tree) = (base.join("repo"), base.join("cache"), base.join("fstests"));
        fs::create_dir_all(tree.join("tests/generic")).unwrap();
        fs::write(
            tree.join("tests/generic/group.list"),
            "001 auto quick\n002 auto\n003 quick rw # x\n004 quick\n",
        )
        .unwrap();
        let groups = vec!["quick".to_owned()];
        let c = Campaign::open(&repo, &cache, &groups, 2, &tree).unwrap();
        assert_eq!(c.tests(1), ["generic/001", "generic/004"]);
        assert!(c.record.starts_with(repo.join(RECORD_DIR)));
        assert_eq!(c.picked(&Pick::All, "6.12", "ours"), [1, 2]);

        // A boot writes its table into the cache; recording copies it beside a run.txt.
        let boot = c.shard_dir(1, "6.12", "ours");
        assert!(boot.starts_with(&cache));
        fs::create_dir_all(&boot).unwrap();
        fs::write(
            boot.join(TABLE_FILE),
            "generic/001 pass 3\ngeneric/004 fail 9\n",
        )
        .unwrap();
        let run = Run {
            kernel: "6.12",
            daemon: "ours".to_owned(),
            tests: Vec::new(),
            problems: vec!["slow".to_owned()],
            total: Duration::from_secs(70),
            check_secs: Some(60),
            dir: boot,
        };
        c.record(1, &run).unwrap();
        let run_file = c.record.join("6.12-ours/shard-1").join(RUN_FILE);
        let recorded = fs::read_to_string(&run_file).unwrap();
        assert!(recorded.contains("build unknown\n"), "{recorded}"); // not a git checkout
        assert_eq!(c.picked(&Pick::All, "6.12", "ours"), [2]);
        assert_eq!(c.picked(&Pick::All, "6.12", "virtiofsd"), [1, 2]);
        assert_eq!(c.picked(&Pick::List(vec![1]), "6.12", "ours"), [1]);

        // The record alone is the campaign: the cache can go.
        fs::remove_dir_all(&cache).unwrap();
        let merged = read_merged(&c.record.join("6.12-ours"), "6.12", "ours").unwrap();
        assert_eq!(merged.shards, [1]);
        assert_eq!(merged.run.count(Status::Fail), 1);
        assert_eq!(merged.run.total, Duration::from_secs(70));
        assert_eq!(merged.run.problems, ["shard 1: slow"]);
        assert!(report(&repo, &groups, 2).unwrap().is_empty());

        // virtiofsd passes on the same shard what ours fails: the report names it.
        let boot = c.shard_dir(1, "6.12", "virtiofsd");
        fs::create_dir_all(&boot).unwrap();
        fs::write(
            boot.join(TABLE_FILE),
            "generic/001 pass 3\ngeneric/004 pass 8\n",
        )
        .unwrap();
        let run = Run {
            daemon: "virtiofsd".to_owned(),
            problems: Vec::new(),
            dir: boot,
            ..run
        };
        c.record(1, &run).unwrap();
        let run_file = c.record.join("6.12-virtiofsd/shard-1").join(RUN_FILE);
        let recorded = fs::read_to_string(&run_file).unwrap();
        assert!(recorded.contains("build 1.14.0\n"), "{recorded}");
        assert_eq!(report(&repo, &groups, 2).unwrap(), ["generic/004"]);
        let table = fs::read_to_string(c.record.join("report-6.12.txt")).unwrap();
        assert!(table.contains("generic/004"), "{table}");

        // Another split of the same list is another campaign; a changed list is refused.
        fs::write(tree.join("tests/generic/group.list"), "001 quick\n").unwrap();
        assert!(Campaign::open(&repo, &cache, &groups, 2, &tree).is_err());
        fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn ranges_read_well() {
        assert_eq!(ranges(&[1, 2, 3, 7, 9, 10]), "1-3,7,9-10");
        assert_eq!(ranges(&[]), "");
    }
}
