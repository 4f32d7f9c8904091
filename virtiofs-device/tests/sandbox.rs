//! The daemon binary in its sandbox: the default `--sandbox namespace` (as root, and as an
//! unprivileged user with a user namespace), `--sandbox chroot`, the capabilities it keeps, and
//! a frontend served across a reconnect. Also `--print-capabilities` and the vhost-user
//! description file.
//!
//! The sandbox tests need root: they are `#[ignore]`d, run by the root tier (`cargo test -p
//! virtiofs-device --test sandbox -- --ignored`), and skip, saying so, without root. The
//! unprivileged one also needs user namespaces (it skips, saying why, where the host refuses
//! them).
#![cfg(all(target_os = "linux", feature = "daemon"))]
#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use fuse_abi::ROOT_ID;
use virtiofs_frontend::{Config, Frontend, Request};

const BIN: &str = env!("CARGO_BIN_EXE_virtiofs-device");
const T: Duration = Duration::from_secs(10);
/// The unprivileged user the user-namespace test runs the daemon as.
const NOBODY: u32 = 65534;

/// Kernel capability numbers (`linux/capability.h`).
mod cap {
    pub(crate) const CHOWN: u32 = 0;
    pub(crate) const DAC_OVERRIDE: u32 = 1;
    pub(crate) const DAC_READ_SEARCH: u32 = 2;
    pub(crate) const FOWNER: u32 = 3;
    pub(crate) const FSETID: u32 = 4;
    pub(crate) const SETGID: u32 = 6;
    pub(crate) const SETUID: u32 = 7;
    pub(crate) const SYS_ADMIN: u32 = 21;
    pub(crate) const MKNOD: u32 = 27;
    pub(crate) const SETFCAP: u32 = 31;
}

fn mask(caps: &[u32]) -> u64 {
    caps.iter().fold(0, |m, c| m | 1 << c)
}

/// The linux backend's set as root, by default: no SETFCAP, since without `--xattr` (and with
/// the default map) the guest's file capabilities never reach a host file.
fn default_caps() -> Vec<u32> {
    use cap::*;
    vec![CHOWN, DAC_OVERRIDE, FOWNER, FSETID, SETGID, SETUID, MKNOD]
}

fn is_root() -> bool {
    fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// A temporary share (with `hello`, 12 bytes) beside the socket, in a directory every user
/// can traverse.
struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        fs::create_dir(dir.path().join("share")).unwrap();
        fs::write(dir.path().join("share/hello"), b"hello, world").unwrap();
        Fixture { dir }
    }

    fn share(&self) -> PathBuf {
        self.dir.path().join("share")
    }

    fn socket(&self) -> PathBuf {
        self.dir.path().join("vu.sock")
    }

    fn log(&self) -> PathBuf {
        self.dir.path().join("daemon.log")
    }

    /// Gives the directory, the share and its file to `uid`.
    fn chown_all(&self, uid: u32) {
        for p in [
            self.dir.path().to_path_buf(),
            self.share(),
            self.share().join("hello"),
        ] {
            std::os::unix::fs::chown(&p, Some(uid), Some(uid)).unwrap();
        }
    }

    /// `BIN --socket-path --shared-dir` plus `extra`, run through `prefix` (e.g. setpriv).
    fn start(&self, prefix: &[&str], extra: &[&str]) -> Daemon {
        let log = fs::File::create(self.log()).unwrap();
        let mut cmd = match prefix.split_first() {
            Some((first, rest)) => {
                let mut c = Command::new(first);
                c.args(rest).arg(BIN);
                c
            }
            None => Command::new(BIN),
        };
        cmd.arg("--socket-path")
            .arg(self.socket())
            .arg("--shared-dir")
            .arg(self.share())
            .args(extra)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        let child = cmd.spawn().unwrap();
        Daemon {
            child,
            log: self.log(),
        }
    }
}

struct Daemon {
    child: Child,
    log: PathBuf,
}

impl Daemon {
    fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Connects once the socket is there; `Err(log)` if the daemon exited first.
    fn connect(&mut self, socket: &Path) -> Result<Frontend, String> {
        let deadline = Instant::now() + T;
        let mut last = String::new();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Err(format!("daemon exited ({status}):\n{}", self.log()));
            }
            if socket.exists() {
                match Frontend::connect(socket, Config::new(1)) {
                    Ok(f) => return Ok(f),
                    Err(e) => last = e.to_string(),
                }
            }
            assert!(
                Instant::now() < deadline,
                "no frontend connection ({last}):\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The serving process: the daemon's child under `--sandbox namespace`, else itself.
    fn server_pid(&self, forked: bool) -> u32 {
        let pid = self.child.id();
        if !forked {
            return pid;
        }
        let children = virtiofs_frontend::process::children_of(pid);
        assert_eq!(children.len(), 1, "children of {pid}: {children:?}");
        children[0]
    }

    /// SIGTERM, then waits.
    fn terminate(mut self) -> ExitStatus {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        self.child.wait().unwrap()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// INIT, LOOKUP of `hello` (its size checked), GETATTR of it.
fn exercise(f: &mut Frontend) {
    f.init().unwrap();
    let q = f.requests();
    let entry = q
        .call(&Request::lookup(ROOT_ID, "hello"), 4096, T)
        .unwrap()
        .entry()
        .unwrap();
    assert_eq!(entry.attr.size.get(), 12);
    let attr = q
        .call(&Request::getattr(entry.nodeid.get()), 4096, T)
        .unwrap()
        .attr()
        .unwrap();
    assert_eq!(attr.attr.size.get(), 12);
    // Nothing outside the share: its parent is itself.
    let up = q.call(&Request::lookup(ROOT_ID, ".."), 4096, T).unwrap();
    if let Ok(e) = up.entry() {
        assert_eq!(e.nodeid.get(), ROOT_ID, "'..' of the root left the share");
    }
}

fn status_field(pid: u32, name: &str) -> String {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(name))
        .unwrap()
        .trim()
        .to_owned()
}

fn cap_eff(pid: u32) -> u64 {
    u64::from_str_radix(&status_field(pid, "CapEff:"), 16).unwrap()
}

fn ns(pid: &str, kind: &str) -> PathBuf {
    fs::read_link(format!("/proc/{pid}/ns/{kind}")).unwrap()
}

/// The namespace sandbox's waiting parent `pid` holds no capability (none effective, none in
/// its bounding set) and runs under its own seccomp filter with no_new_privs. It confines
/// itself right after the fork, while the child sets up: waited for (up to `T`), not raced.
fn assert_parent_confined(pid: u32) {
    let deadline = Instant::now() + T;
    while status_field(pid, "Seccomp:") != "2" && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(
        status_field(pid, "Seccomp:"),
        "2",
        "the parent has no filter"
    );
    assert_eq!(status_field(pid, "NoNewPrivs:"), "1");
    assert_eq!(cap_eff(pid), 0, "the parent kept capabilities");
    assert_eq!(
        u64::from_str_radix(&status_field(pid, "CapBnd:"), 16).unwrap(),
        0,
        "the parent's bounding set"
    );
}

/// `/proc/PID/root` is the share (same device and inode), not the host's root.
fn assert_root_is(pid: u32, share: &Path) {
    let root = fs::metadata(format!("/proc/{pid}/root/")).unwrap();
    let want = fs::metadata(share).unwrap();
    let host = fs::metadata("/").unwrap();
    assert_eq!((root.dev(), root.ino()), (want.dev(), want.ino()));
    assert_ne!((root.dev(), root.ino()), (host.dev(), host.ino()));
}

/// The checks common to the root runs: connect, serve, inspect, reconnect, terminate.
fn check_sandboxed(fx: &Fixture, extra: &[&str], forked: bool, want_caps: u64) {
    let mut daemon = fx.start(&[], extra);
    let mut f = daemon.connect(&fx.socket()).unwrap();
    exercise(&mut f);
    let pid = daemon.server_pid(forked);
    assert_root_is(pid, &fx.share());
    let different = |kind: &str| ns(&pid.to_string(), kind) != ns("self", kind);
    if forked {
        for kind in ["mnt", "pid", "ipc", "uts", "net"] {
            assert!(different(kind), "{kind} namespace shared with the caller");
        }
        assert!(!different("user"), "a user namespace as root");
        assert_eq!(
            status_field(pid, "NSpid:").split_whitespace().last(),
            Some("1")
        );
        assert_parent_confined(daemon.child.id());
    } else {
        assert!(!different("mnt"), "--sandbox chroot made a mount namespace");
    }
    assert_eq!(
        cap_eff(pid),
        want_caps,
        "CapEff {:#x}, want {want_caps:#x}",
        cap_eff(pid)
    );
    assert_eq!(
        u64::from_str_radix(&status_field(pid, "CapBnd:"), 16).unwrap(),
        want_caps
    );
    // A second frontend after the first one left (a VMM reconnecting, a guest rebooting).
    drop(f);
    let mut f = daemon.connect(&fx.socket()).unwrap();
    exercise(&mut f);
    drop(f);
    let log = daemon.log();
    let status = daemon.terminate();
    assert_eq!(status.signal(), Some(15), "{status}:\n{log}");
    if forked {
        assert!(
            fs::metadata(format!("/proc/{pid}")).is_err(),
            "the sandboxed child outlived its parent"
        );
    }
}

#[test]
#[ignore = "needs root: run by the root tier (cargo xtask ci --only root)"]
fn namespace_sandbox_as_root() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let fx = Fixture::new();
    check_sandboxed(&fx, &[], true, mask(&default_caps()));
    let log = fs::read_to_string(fx.log()).unwrap();
    assert!(log.contains("sandbox: namespace"), "{log}");
    assert!(log.contains("capabilities: effective chown,"), "{log}");
}

#[test]
#[ignore = "needs root: run by the root tier (cargo xtask ci --only root)"]
fn namespace_sandbox_with_file_handles_and_modcaps() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let fx = Fixture::new();
    let mut want = default_caps();
    want.retain(|c| *c != cap::MKNOD);
    want.extend([cap::DAC_READ_SEARCH, cap::SYS_ADMIN]);
    check_sandboxed(
        &fx,
        &["--inode-file-handles=prefer", "--modcaps=-mknod:+sys_admin"],
        true,
        mask(&want),
    );
}

#[test]
#[ignore = "needs root: run by the root tier (cargo xtask ci --only root)"]
fn namespace_sandbox_keeps_setfcap_only_for_a_map_that_passes_capabilities() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let fx = Fixture::new();
    // The default map renames security.capability: SETFCAP would only widen what a
    // compromised daemon could do.
    check_sandboxed(&fx, &["--xattr"], true, mask(&default_caps()));
    let mut want = default_caps();
    want.push(cap::SETFCAP);
    check_sandboxed(
        &fx,
        &["--xattr", "--xattrmap=:ok:all:::"],
        true,
        mask(&want),
    );
}

#[test]
#[ignore = "needs root: run by the root tier (cargo xtask ci --only root)"]
fn namespace_sandbox_macos_logic_backend() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    use cap::*;
    let fx = Fixture::new();
    // LOOKUP and GETATTR read the backend's attributes through /proc/self/fd/N: after the
    // pivot there is no /proc to name.
    let want = mask(&[DAC_OVERRIDE, DAC_READ_SEARCH, FOWNER, FSETID, SYS_ADMIN]);
    check_sandboxed(&fx, &["--backend=macos-logic"], true, want);
}

#[test]
#[ignore = "needs root: run by the root tier (cargo xtask ci --only root)"]
fn chroot_sandbox_as_root() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let fx = Fixture::new();
    check_sandboxed(&fx, &["--sandbox=chroot"], false, mask(&default_caps()));
    let log = fs::read_to_string(fx.log()).unwrap();
    assert!(log.contains("sandbox: chroot into"), "{log}");
}

/// The command prefix that starts a program as uid/gid [`NOBODY`] with no groups, or `None`
/// (the test skipped, with the reason printed) when not root or without setpriv.
fn as_nobody() -> Option<Vec<String>> {
    if !is_root() {
        eprintln!("skipped: needs root (to start the daemon as uid {NOBODY})");
        return None;
    }
    if fs::metadata("/usr/bin/setpriv").is_err() {
        eprintln!("skipped: no setpriv");
        return None;
    }
    let id = NOBODY.to_string();
    Some(
        [
            "setpriv",
            "--reuid",
            &id,
            "--regid",
            &id,
            "--clear-groups",
            "--",
        ]
        .map(str::to_owned)
        .to_vec(),
    )
}

#[test]
#[ignore = "needs root: run by the root tier (cargo xtask ci --only root)"]
fn namespace_sandbox_unprivileged_with_a_user_namespace() {
    let Some(as_nobody) = as_nobody() else {
        return;
    };
    let fx = Fixture::new();
    fx.chown_all(NOBODY);
    let id = NOBODY.to_string();
    let prefix: Vec<&str> = as_nobody.iter().map(String::as_str).collect();
    let mut daemon = fx.start(&prefix, &[]);
    let mut f = match daemon.connect(&fx.socket()) {
        Ok(f) => f,
        Err(log) if log.contains("cannot create the user and PID namespace") => {
            eprintln!("skipped: the host refuses unprivileged user namespaces:\n{log}");
            return;
        }
        Err(log) => panic!("{log}"),
    };
    exercise(&mut f);
    // setpriv exec'd the daemon: the spawned process is the daemon's parent.
    let pid = daemon.server_pid(true);
    assert_eq!(
        status_field(pid, "Uid:").split_whitespace().next(),
        Some(id.as_str())
    );
    for kind in ["user", "mnt", "pid", "net"] {
        assert_ne!(ns(&pid.to_string(), kind), ns("self", kind), "{kind}");
    }
    assert_root_is(pid, &fx.share());
    assert_eq!(cap_eff(pid), 0, "capabilities left in the user namespace");
    assert_parent_confined(daemon.child.id());
    // The guest's files are the caller's.
    f.requests()
        .call(
            &Request::create(ROOT_ID, "made", libc::O_RDWR, 0o644),
            4096,
            T,
        )
        .unwrap()
        .create()
        .unwrap();
    assert_eq!(fs::metadata(fx.share().join("made")).unwrap().uid(), NOBODY);
    drop(f);
    let mut f = daemon.connect(&fx.socket()).unwrap();
    exercise(&mut f);
    drop(f);
    let status = daemon.terminate();
    assert_eq!(status.signal(), Some(15), "{status}");
}

#[test]
#[ignore = "needs root: run by the root tier (cargo xtask ci --only root)"]
fn the_filtered_parent_exits_as_the_daemon_did() {
    let Some(as_nobody) = as_nobody() else {
        return;
    };
    // The directory is nobody's, the share root's and closed: every option is good, and the
    // daemon fails only after the fork, when its child enters the share.
    let fx = Fixture::new();
    std::os::unix::fs::chown(fx.dir.path(), Some(NOBODY), Some(NOBODY)).unwrap();
    fs::set_permissions(fx.share(), fs::Permissions::from_mode(0o700)).unwrap();
    let prefix: Vec<&str> = as_nobody.iter().map(String::as_str).collect();
    let mut daemon = fx.start(&prefix, &[]);
    let status = daemon.child.wait().unwrap();
    let log = daemon.log();
    if log.contains("cannot create the user and PID namespace") {
        eprintln!("skipped: the host refuses unprivileged user namespaces:\n{log}");
        return;
    }
    // The parent had installed its filter, and its exit path ran under it.
    assert!(log.contains("the waiting parent"), "{log}");
    assert!(log.contains("chdir"), "{log}");
    assert_eq!(status.code(), Some(1), "{status}:\n{log}");
}

#[test]
fn print_capabilities_is_the_vhost_user_json() {
    let out = Command::new(BIN)
        .arg("--print-capabilities")
        .output()
        .unwrap();
    assert!(out.status.success());
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["type"], "fs");
    let features: Vec<&str> = json["features"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    // Options given one by one; no migration.
    assert_eq!(features, ["separate-options"]);
}

#[test]
fn the_vhost_user_description_file_is_valid() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/50-virtiofs-device.json");
    let json: serde_json::Value = serde_json::from_str(&fs::read_to_string(path).unwrap()).unwrap();
    assert_eq!(json["type"], "fs");
    assert!(
        json["binary"]
            .as_str()
            .unwrap()
            .ends_with("virtiofs-device")
    );
    assert!(json["description"].is_string());
}
