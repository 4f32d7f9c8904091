//! The daemon seen from the host: the unprivileged account `cargo xtask e2e --daemon-user`
//! starts it as, the serving process behind a namespace sandbox's waiting parent, that
//! process's identity (`/proc/PID/status`), its CPU time (`/proc/PID/stat`) and peak RSS.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::util;

/// The account `--profile userns` runs the daemon as, created (a system user with its own
/// group, no home, no shell) when missing.
pub(crate) const DEFAULT_USER: &str = "virtiofs-e2e";

/// An unprivileged account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Account {
    pub(crate) name: String,
    pub(crate) uid: u32,
    pub(crate) gid: u32,
}

/// Parses a `getent passwd` line: `name:x:uid:gid:...`.
fn parse_passwd(line: &str) -> Option<Account> {
    let mut fields = line.trim_end().split(':');
    let name = fields.next()?.to_owned();
    let _password = fields.next()?;
    let uid = fields.next()?.parse().ok()?;
    let gid = fields.next()?.parse().ok()?;
    Some(Account { name, uid, gid })
}

/// Looks `name` up (`getent passwd`); `None` if there is no such account.
fn lookup(name: &str) -> Result<Option<Account>> {
    let out = util::cmd("getent")
        .args(["passwd", name])
        .output()
        .context("cannot run getent")?;
    // getent exits 2 for "not found".
    if !out.status.success() {
        return Ok(None);
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let account = text
        .lines()
        .next()
        .and_then(parse_passwd)
        .with_context(|| format!("getent passwd {name}: cannot parse `{}`", text.trim()))?;
    Ok(Some(account))
}

/// The account `name`; [`DEFAULT_USER`] is created when missing (`useradd --system`), any other
/// name must exist. Root (uid 0) is refused: the point is an unprivileged daemon.
pub(crate) fn ensure_account(name: &str) -> Result<Account> {
    if lookup(name)?.is_none() {
        if name != DEFAULT_USER {
            bail!("--daemon-user {name}: no such account");
        }
        let mut cmd = util::cmd("useradd");
        cmd.args([
            "--system",
            "--user-group",
            "--no-create-home",
            "--home-dir",
            "/nonexistent",
            "--shell",
            "/usr/sbin/nologin",
            "--comment",
            "the unprivileged virtio-fs daemon of cargo xtask e2e",
            name,
        ]);
        util::run(cmd)?;
    }
    let account = lookup(name)?.with_context(|| format!("account {name} still missing"))?;
    if account.uid == 0 {
        bail!("--daemon-user {name}: uid 0 is not unprivileged");
    }
    Ok(account)
}

/// Where an unprivileged daemon's files live for one boot: `<tmp>/virtiofs-e2e-<pid>-<label>/`
/// (root's, mode 0755), with a copy of the daemon binary and the shared directory (the
/// account's, mode 0755). The repository and its cache may sit below a directory the account
/// cannot search (root's home on a CI machine): nothing of theirs is named to the daemon.
pub(crate) struct Staging {
    pub(crate) dir: PathBuf,
    pub(crate) daemon: PathBuf,
    pub(crate) shared: PathBuf,
}

impl Staging {
    pub(crate) fn new(label: &str, daemon: &Path, account: &Account) -> Result<Self> {
        use std::os::unix::fs::{PermissionsExt, chown};
        let dir = std::env::temp_dir().join(format!("virtiofs-e2e-{}-{label}", std::process::id()));
        if dir.exists() {
            fs::remove_dir_all(&dir).with_context(|| format!("cannot clear {}", dir.display()))?;
        }
        fs::create_dir(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755))?;
        let name = daemon
            .file_name()
            .context("the daemon path has no file name")?;
        let copy = dir.join(name);
        fs::copy(daemon, &copy)
            .with_context(|| format!("cannot copy {} to {}", daemon.display(), dir.display()))?;
        fs::set_permissions(&copy, fs::Permissions::from_mode(0o755))?;
        let shared = dir.join("shared");
        fs::create_dir(&shared)?;
        fs::set_permissions(&shared, fs::Permissions::from_mode(0o755))?;
        chown(&shared, Some(account.uid), Some(account.gid))
            .with_context(|| format!("cannot give {} to {}", shared.display(), account.name))?;
        Ok(Self {
            dir,
            daemon: copy,
            shared,
        })
    }

    /// Removes the binary copy, and the directory if nothing else is left in it (a shared
    /// directory kept for inspection stays).
    pub(crate) fn finish(&self) {
        let _ = fs::remove_file(&self.daemon);
        let _ = fs::remove_dir(&self.dir);
    }
}

/// The fields of `/proc/PID/stat` after the command name (which may contain spaces): the
/// first is the state (field 3 of proc(5)).
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = text.rsplit_once(')')?;
    Some(rest.split_whitespace().map(str::to_owned).collect())
}

/// The process that serves: the only child of `pid` (the waiting parent of a namespace
/// sandbox), or `pid` itself when it has none (`--sandbox chroot|none`).
pub(crate) fn serving_pid(pid: u32) -> u32 {
    match children(pid).as_slice() {
        [child] => *child,
        _ => pid,
    }
}

/// `pid` and every process below it (a sandbox's waiting parent and its serving child).
pub(crate) fn tree(pid: u32) -> Vec<u32> {
    let mut all = vec![pid];
    let mut i = 0;
    // Bounded: a process tree of a daemon is a few processes deep.
    while i < all.len() && all.len() < 64 {
        all.extend(children(all[i]));
        i += 1;
    }
    all
}

/// The user plus system CPU time of `pid` and every process below it so far; `None` once
/// `pid` is gone.
pub(crate) fn tree_cpu(pid: u32, ticks: u64) -> Option<Duration> {
    let (user, system) = cpu_time(pid, ticks)?;
    let below: Duration = tree(pid)
        .into_iter()
        .skip(1)
        .filter_map(|p| cpu_time(p, ticks))
        .map(|(u, s)| u + s)
        .sum();
    Some(user + system + below)
}

/// The largest peak resident set (`VmHWM`, KiB) of `pid` and the processes below it: the
/// serving process's, for a sandboxed daemon; `None` once `pid` is gone.
pub(crate) fn peak_rss_kib(pid: u32) -> Option<u64> {
    tree(pid)
        .into_iter()
        .filter_map(|p| {
            let value = status_field(p, "VmHWM:")?;
            value.split_whitespace().next()?.parse().ok()
        })
        .max()
}

/// The children of `pid`.
fn children(pid: u32) -> Vec<u32> {
    fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .ok()
        .map(|text| {
            text.split_whitespace()
                .filter_map(|p| p.parse::<u32>().ok())
                .collect::<Vec<_>>()
        })
        .unwrap_or_else(|| {
            // No CONFIG_PROC_CHILDREN: every process whose parent is `pid` (field 4, ppid).
            fs::read_dir("/proc")
                .into_iter()
                .flatten()
                .flatten()
                .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
                .filter(|p| {
                    stat_fields(*p)
                        .is_some_and(|f| f.get(1).map(String::as_str) == Some(&pid.to_string()))
                })
                .collect()
        })
}

/// A `/proc/PID/status` line's value (`Uid:` ...), as the host sees it.
fn status_field(pid: u32, key: &str) -> Option<String> {
    let text = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(key))
        .map(|v| v.trim().to_owned())
}

/// Checks that `pid` runs as `account` and nothing more: every uid (real, effective, saved,
/// filesystem) and gid is the account's, no supplementary group, no effective capability,
/// and a user namespace of its own (the sandbox made one). Returns what was seen.
pub(crate) fn check_identity(pid: u32, account: &Account) -> Result<String, String> {
    let field =
        |key: &str| status_field(pid, key).ok_or_else(|| format!("no {key} in /proc/{pid}/status"));
    let ids_are = |key: &str, id: u32| -> Result<String, String> {
        let value = field(key)?;
        let ids: Vec<&str> = value.split_whitespace().collect();
        if ids.len() != 4 || ids.iter().any(|i| *i != id.to_string()) {
            return Err(format!(
                "pid {pid}: {key} {value}, expected {id} four times"
            ));
        }
        Ok(ids.join(" "))
    };
    let uid = ids_are("Uid:", account.uid)?;
    ids_are("Gid:", account.gid)?;
    let groups = field("Groups:")?;
    if !groups.is_empty() {
        return Err(format!("pid {pid}: supplementary groups {groups}"));
    }
    let cap_eff = field("CapEff:")?;
    if u64::from_str_radix(&cap_eff, 16) != Ok(0) {
        return Err(format!("pid {pid}: CapEff {cap_eff}, expected 0"));
    }
    let ns = |p: &str| {
        fs::read_link(format!("/proc/{p}/ns/user"))
            .map_or_else(|e| format!("unreadable ({e})"), |l| l.display().to_string())
    };
    let (theirs, ours) = (ns(&pid.to_string()), ns("self"));
    if theirs == ours || !theirs.starts_with("user:") {
        return Err(format!(
            "pid {pid}: user namespace {theirs}, the host's is {ours}: no user namespace of its own"
        ));
    }
    Ok(format!(
        "pid {pid}: Uid {uid}, CapEff 0, {theirs} (the host's is not)"
    ))
}

/// Clock ticks per second, as `/proc/PID/stat` counts CPU time.
pub(crate) fn clock_ticks() -> u64 {
    util::cmd("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .filter(|t| *t > 0)
        .unwrap_or(100)
}

/// The user and system CPU time `pid` has used so far, all its threads together (fields 14
/// and 15 of `/proc/PID/stat`); `None` once it is gone.
pub(crate) fn cpu_time(pid: u32, ticks: u64) -> Option<(Duration, Duration)> {
    let fields = stat_fields(pid)?;
    let tick = |i: usize| -> Option<Duration> {
        let n: u64 = fields.get(i)?.parse().ok()?;
        Some(Duration::from_millis(n.saturating_mul(1000) / ticks))
    };
    // Field 3 (the state) is index 0: utime (14) and stime (15) are 11 and 12.
    Some((tick(11)?, tick(12)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwd_lines() {
        assert_eq!(
            parse_passwd("virtiofs-e2e:x:996:994::/nonexistent:/usr/sbin/nologin\n"),
            Some(Account {
                name: "virtiofs-e2e".to_owned(),
                uid: 996,
                gid: 994
            })
        );
        assert_eq!(parse_passwd("broken:x:abc:1::/:/bin/sh"), None);
        assert_eq!(parse_passwd(""), None);
    }

    #[test]
    fn this_process_is_seen() {
        let me = std::process::id();
        let (user, system) = cpu_time(me, clock_ticks()).unwrap();
        assert!(user + system < Duration::from_secs(24 * 3600));
        assert!(cpu_time(u32::MAX, 100).is_none());
        assert!(tree_cpu(me, clock_ticks()).unwrap() >= user + system);
        assert!(tree_cpu(u32::MAX, 100).is_none());
        assert!(peak_rss_kib(me).unwrap() > 0);
        assert_eq!(tree(me)[0], me);
        // Not in a user namespace of its own (and never uid 4294967294).
        let nobody = Account {
            name: "x".to_owned(),
            uid: u32::MAX - 1,
            gid: u32::MAX - 1,
        };
        assert!(check_identity(me, &nobody).is_err());
    }
}
