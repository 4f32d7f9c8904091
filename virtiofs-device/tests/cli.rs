//! The daemon's command line, run as a process: bad options give one clear line on stderr and
//! a non-zero exit; the daemon refuses a socket another daemon is serving.
#![cfg(all(target_os = "linux", feature = "daemon"))]
#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_virtiofs-device");

fn run(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// Runs the daemon and returns its single stderr line.
fn fails(args: &[&str]) -> String {
    let out = run(args);
    assert!(!out.status.success(), "{args:?} succeeded");
    let stderr = String::from_utf8(out.stderr).unwrap();
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{args:?}: not one line: {stderr:?}");
    assert!(lines[0].starts_with("virtiofs-device: "), "{stderr:?}");
    lines[0].to_owned()
}

/// virtiofsd options this daemon does not implement stop it at start, by name.
#[test]
fn unimplemented_virtiofsd_options_are_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("s.sock");
    let base = [
        "--socket-path",
        sock.to_str().unwrap(),
        "--shared-dir",
        dir.path().to_str().unwrap(),
    ];
    for (option, why) in [
        ("--syslog", "--syslog: not supported"),
        (
            "--migration-mode=file-handles",
            "live migration is not supported",
        ),
        (
            "--translate-uid=squash-guest:0:1000:65536",
            "--translate-uid:",
        ),
    ] {
        let msg = fails(&[&base[..], &[option]].concat());
        assert!(msg.contains(why), "{option}: {msg}");
        assert!(!sock.exists(), "{option}: the daemon listened");
    }
}

#[test]
fn bad_options_give_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("s.sock");
    let sock = sock.to_str().unwrap();
    let shared = dir.path().to_str().unwrap();

    let msg = fails(&["--socket-path", sock, "--shared-dir", "/nonexistent/dir"]);
    assert!(msg.contains("no such directory"), "{msg}");
    let long = "t".repeat(37);
    let msg = fails(&[
        "--socket-path",
        sock,
        "--shared-dir",
        shared,
        "--tag",
        &long,
    ]);
    assert!(msg.contains("longer than 36 bytes"), "{msg}");
    let msg = fails(&["--socket-path", sock, "--shared-dir", shared, "--tag", ""]);
    assert!(msg.contains("empty"), "{msg}");
    let msg = fails(&[
        "--socket-path",
        sock,
        "--shared-dir",
        shared,
        "--cache",
        "sometimes",
    ]);
    assert!(msg.contains("possible values"), "{msg}");
    let msg = fails(&["--shared-dir", shared]);
    assert!(msg.contains("--socket-path"), "{msg}");
    let msg = fails(&[
        "--socket-path",
        sock,
        "--shared-dir",
        shared,
        "--modcaps=+nonsense",
    ]);
    assert!(msg.contains("--modcaps +nonsense"), "{msg}");
    let msg = fails(&[
        "--socket-path",
        sock,
        "--shared-dir",
        shared,
        "--rlimit-nofile",
        "18446744073709551615",
    ]);
    assert!(msg.contains("--rlimit-nofile"), "{msg}");
    let msg = fails(&[
        "--socket-path",
        sock,
        "--shared-dir",
        shared,
        "--socket-group",
        "no-such-group-here",
    ]);
    assert!(msg.contains("no such group"), "{msg}");
    let msg = fails(&[
        "--socket-path",
        sock,
        "--shared-dir",
        shared,
        "--queues",
        "0",
    ]);
    assert!(msg.contains("request queues"), "{msg}");
    let msg = fails(&[
        "--socket-path",
        sock,
        "--shared-dir",
        shared,
        "--backend",
        "macos-logic",
        "--posix-acl",
    ]);
    assert!(msg.contains("macos-logic"), "{msg}");
    assert!(msg.contains("POSIX ACLs"), "{msg}");
    let msg = fails(&["--fd", "1", "--shared-dir", shared]);
    assert!(msg.contains("--fd 1"), "{msg}");
    let msg = fails(&[
        "--socket-path",
        "/nonexistent/dir/s.sock",
        "--shared-dir",
        shared,
    ]);
    assert!(msg.contains("cannot listen"), "{msg}");
}

#[test]
fn help_and_version_succeed() {
    let out = run(&["--help"]);
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for option in [
        "--socket-path",
        "--shared-dir",
        "--fuse-mount",
        "--queues",
        "--posix-acl",
    ] {
        assert!(help.contains(option), "{option} missing from --help");
    }
    // Which layers are on by default.
    assert!(help.contains("Sandbox layers active by default"), "{help}");
    assert!(help.contains("[default: namespace]"), "{help}");
    assert!(run(&["--version"]).status.success());
    assert!(run(&["--print-capabilities"]).status.success());
}

/// What a daemon that ended said on stderr (piped; it logs a few lines at start-up), for a
/// failure's message.
fn said(daemon: &mut std::process::Child) -> String {
    let _ = daemon.kill();
    let mut text = String::new();
    if let Some(mut err) = daemon.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut err, &mut text);
    }
    text
}

/// VHOST_USER_GET_FEATURES (version 1, no body), and the size of its reply (header and u64).
const GET_FEATURES: [u8; 12] = [1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0];
const FEATURES_REPLY: usize = 20;

/// Whether a daemon serves `sock`: it answers GET_FEATURES within 10 s. A bare connect is not
/// enough: the socket accepts connections (into its backlog) from the moment it is bound, while
/// the daemon still starts (sandbox, lock-down), and after it died, while the sandbox's parent
/// still holds the socket.
fn serves(sock: &std::path::Path) -> Result<(), String> {
    use std::io::{Read, Write};
    let mut s = std::os::unix::net::UnixStream::connect(sock).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    s.write_all(&GET_FEATURES).map_err(|e| e.to_string())?;
    let mut reply = [0u8; FEATURES_REPLY];
    s.read_exact(&mut reply).map_err(|e| e.to_string())?;
    Ok(())
}

#[test]
fn a_socket_in_use_is_refused_and_a_stale_one_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("busy.sock");
    let shared = dir.path().to_str().unwrap();
    // A stale socket file (nobody listening) is replaced.
    drop(std::os::unix::net::UnixListener::bind(&sock).unwrap());
    let mut daemon = Command::new(BIN)
        .args([
            "--socket-path",
            sock.to_str().unwrap(),
            "--shared-dir",
            shared,
        ])
        .args(["--log-level", "info"])
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Until the daemon has replaced it, connecting is refused; then it is served.
    let deadline = Instant::now() + Duration::from_secs(10);
    while let Err(e) = serves(&sock) {
        if let Some(status) = daemon.try_wait().unwrap() {
            panic!("daemon exited ({status}); it said:\n{}", said(&mut daemon));
        }
        assert!(
            Instant::now() < deadline,
            "daemon does not serve ({e}); it said:\n{}",
            said(&mut daemon)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let msg = fails(&[
        "--socket-path",
        sock.to_str().unwrap(),
        "--shared-dir",
        shared,
    ]);
    assert!(msg.contains("socket in use"), "{msg}");
    // The second daemon's probe came and went: the first daemon still serves.
    if let Err(e) = serves(&sock) {
        panic!(
            "daemon no longer serves after a probe ({e}; {}); it said:\n{}",
            match daemon.try_wait().unwrap() {
                Some(status) => format!("exited: {status}"),
                None => String::from("still running"),
            },
            said(&mut daemon)
        );
    }
    daemon.kill().unwrap();
    daemon.wait().unwrap();
}

#[test]
fn a_file_that_is_not_a_socket_is_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("not-a-socket");
    std::fs::write(&path, b"keep me").unwrap();
    let mut daemon = Command::new(BIN)
        .args([
            "--socket-path",
            path.to_str().unwrap(),
            "--shared-dir",
            dir.path().to_str().unwrap(),
        ])
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Bounded: a daemon that replaced the file would serve there forever.
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = daemon.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            panic!("the daemon runs; it said:\n{}", said(&mut daemon));
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let msg = said(&mut daemon);
    assert!(!status.success(), "{msg}");
    assert!(msg.contains("exists and is not a socket"), "{msg}");
    assert_eq!(std::fs::read(&path).unwrap(), b"keep me");
}

/// CPU time (user and system, clock ticks) the process `pid` has used so far.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name's closing parenthesis; utime and stime are 14 and 15.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

#[test]
fn an_inherited_non_blocking_listener_does_not_spin() {
    use std::os::fd::AsRawFd;
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("fd.sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    // As a VMM may hand it over: non-blocking, and inherited (no FD_CLOEXEC).
    listener.set_nonblocking(true).unwrap();
    nix::fcntl::fcntl(
        listener.as_raw_fd(),
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::empty()),
    )
    .unwrap();
    let fd = listener.as_raw_fd().to_string();
    let mut daemon = Command::new(BIN)
        .args(["--fd", &fd, "--shared-dir", dir.path().to_str().unwrap()])
        .args(["--sandbox", "none", "--log-level", "info"])
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(listener);
    let deadline = Instant::now() + Duration::from_secs(10);
    while let Err(e) = serves(&sock) {
        assert!(
            Instant::now() < deadline,
            "daemon does not serve ({e}); it said:\n{}",
            said(&mut daemon)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // Now it waits for the next frontend, for 2 s: a spinning accept loop uses a core (200
    // ticks at 100 Hz; tens even on a loaded machine), a blocked one nothing.
    std::thread::sleep(Duration::from_millis(200));
    let before = cpu_ticks(daemon.id());
    std::thread::sleep(Duration::from_secs(2));
    let used = cpu_ticks(daemon.id()) - before;
    assert!(
        used < 10,
        "the daemon used {used} ticks waiting for a frontend; it said:\n{}",
        said(&mut daemon)
    );
    daemon.kill().unwrap();
    daemon.wait().unwrap();
}
