//! The daemon binary with its default lock-down (`--seccomp kill`, `--landlock auto`), driven by
//! the project's raw vhost-user frontend: after start-up and while serving, every thread of the
//! daemon has the filter and no_new_privs, Landlock is reported over the share, and requests
//! are still served (the allow-list is enough for them). Needs root (skipped otherwise: the
//! vhost-user memory and the credential switch).
#![cfg(all(target_os = "linux", feature = "daemon"))]
#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use fuse_abi::ROOT_ID;
use virtiofs_frontend::process::Daemon;
use virtiofs_frontend::{Config, Frontend, Request};

const TIMEOUT: Duration = Duration::from_secs(10);

fn is_root() -> bool {
    let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1))
        == Some("0")
}

/// `field` of /proc/PID/task/TID/status for every thread of `pid`.
fn thread_fields(pid: u32, field: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for task in fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let task = task.unwrap().path();
        let Ok(status) = fs::read_to_string(task.join("status")) else {
            continue; // the thread ended meanwhile
        };
        let name = status
            .lines()
            .find_map(|l| l.strip_prefix("Name:"))
            .unwrap_or("?")
            .trim()
            .to_owned();
        let value = status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .unwrap_or("missing")
            .trim()
            .to_owned();
        out.push((name, value));
    }
    out
}

fn start(dir: &Path, extra: &[&str]) -> (Daemon, std::path::PathBuf) {
    let share = dir.join("share");
    fs::create_dir_all(&share).unwrap();
    fs::write(share.join("seed.txt"), b"seed").unwrap();
    let socket = dir.join("vhost.sock");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_virtiofs-device"));
    cmd.arg("--socket-path")
        .arg(&socket)
        .arg("--shared-dir")
        .arg(&share)
        .args(["--queues", "2"])
        .args(extra)
        .env_remove("RUST_LOG");
    let mut daemon = Daemon::spawn(cmd, &dir.join("daemon.log")).unwrap();
    let deadline = Instant::now() + TIMEOUT;
    while !socket.exists() {
        assert!(
            daemon.alive(),
            "the daemon exited: {}",
            daemon.log_tail(2000)
        );
        assert!(
            Instant::now() < deadline,
            "no socket: {}",
            daemon.log_tail(2000)
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    (daemon, share)
}

/// LOOKUP, CREATE, WRITE, READ, RELEASE, GETATTR on every request queue.
fn exercise(frontend: &mut Frontend) {
    frontend.init().unwrap();
    for q in 1..frontend.num_queues() {
        let queue = frontend.queue(q);
        let reply = queue
            .call(&Request::lookup(ROOT_ID, "seed.txt"), 4096, TIMEOUT)
            .unwrap();
        let entry = reply.entry().unwrap();
        let name = format!("new-{q}.txt");
        let reply = queue
            .call(
                &Request::create(ROOT_ID, &name, libc_o_rdwr(), 0o644),
                4096,
                TIMEOUT,
            )
            .unwrap();
        let (created, open) = reply.create().unwrap();
        let reply = queue
            .call(
                &Request::write(created.nodeid.get(), open.fh.get(), 0, b"hello"),
                4096,
                TIMEOUT,
            )
            .unwrap();
        assert!(reply.errno().is_none(), "WRITE: {:?}", reply.errno());
        let reply = queue
            .call(
                &Request::read(created.nodeid.get(), open.fh.get(), 0, 5),
                4096,
                TIMEOUT,
            )
            .unwrap();
        assert_eq!(reply.body().unwrap(), b"hello");
        queue
            .call(
                &Request::release(created.nodeid.get(), open.fh.get()),
                4096,
                TIMEOUT,
            )
            .unwrap();
        let reply = queue
            .call(&Request::getattr(entry.nodeid.get()), 4096, TIMEOUT)
            .unwrap();
        assert!(reply.errno().is_none(), "GETATTR: {:?}", reply.errno());
    }
}

/// O_RDWR, without a libc dependency in this test.
fn libc_o_rdwr() -> i32 {
    2
}

#[test]
fn every_thread_is_filtered_and_landlock_is_over_the_share() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (mut daemon, share) = start(dir.path(), &[]);
    let mut frontend = Frontend::connect(dir.path().join("vhost.sock"), Config::new(2)).unwrap();
    exercise(&mut frontend);
    assert_eq!(fs::read(share.join("new-1.txt")).unwrap(), b"hello");

    let seccomp = thread_fields(daemon.serving_pid(), "Seccomp:");
    let nnp = thread_fields(daemon.serving_pid(), "NoNewPrivs:");
    // The main thread, the queue workers, the vhost-user threads of the connection.
    assert!(seccomp.len() >= 4, "{seccomp:?}");
    assert!(seccomp.iter().all(|(_, v)| v == "2"), "{seccomp:?}");
    assert!(nnp.iter().all(|(_, v)| v == "1"), "{nnp:?}");

    let log = fs::read_to_string(daemon.log_path()).unwrap();
    assert!(
        log.contains("seccomp: kill, ") && log.contains("syscalls allowed"),
        "{log}"
    );
    // Where the kernel has Landlock (5.13+) the default (auto) enforces it over the share;
    // elsewhere it says so and serves.
    if log.contains("landlock: unavailable") {
        eprintln!("this kernel has no Landlock");
    } else {
        // Under the default --sandbox namespace the share is the root by then.
        let beneath = if log.contains("pivot_root into") {
            "fs access beneath /".to_owned()
        } else {
            format!("fs access beneath {}", share.display())
        };
        assert!(
            log.contains("landlock: ABI v") && log.contains(&beneath),
            "{log}"
        );
    }

    // Still served after the first frontend leaves (reconnect under the filter).
    drop(frontend);
    let mut frontend = Frontend::connect(dir.path().join("vhost.sock"), Config::new(2)).unwrap();
    frontend.init().unwrap();
    assert!(daemon.alive(), "{}", daemon.log_tail(2000));
    drop(frontend);
    daemon.stop();
}

#[test]
fn none_means_no_filter() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (mut daemon, _share) = start(dir.path(), &["--seccomp=none", "--landlock=off"]);
    let mut frontend = Frontend::connect(dir.path().join("vhost.sock"), Config::new(2)).unwrap();
    exercise(&mut frontend);
    let seccomp = thread_fields(daemon.serving_pid(), "Seccomp:");
    assert!(seccomp.iter().all(|(_, v)| v == "0"), "{seccomp:?}");
    let log = fs::read_to_string(daemon.log_path()).unwrap();
    assert!(
        !log.contains("seccomp: ") && !log.contains("landlock: "),
        "{log}"
    );
    drop(frontend);
    daemon.stop();
}

#[test]
fn trap_and_log_modes_serve_with_every_thread_filtered() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    for mode in ["trap", "log"] {
        let dir = tempfile::tempdir().unwrap();
        let arg = format!("--seccomp={mode}");
        let (mut daemon, _share) = start(dir.path(), &[&arg]);
        let mut frontend =
            Frontend::connect(dir.path().join("vhost.sock"), Config::new(2)).unwrap();
        exercise(&mut frontend);
        let seccomp = thread_fields(daemon.serving_pid(), "Seccomp:");
        assert!(seccomp.iter().all(|(_, v)| v == "2"), "{mode}: {seccomp:?}");
        let log = fs::read_to_string(daemon.log_path()).unwrap();
        assert!(log.contains(&format!("seccomp: {mode}, ")), "{log}");
        // Nothing the requests needed was outside the list.
        assert!(!log.contains("not in the allow-list"), "{log}");
        assert!(!log.contains("forbidden system call"), "{log}");
        if mode == "log" {
            assert!(log.contains("reported by name and let through"), "{log}");
            assert!(
                seccomp.iter().any(|(name, _)| name == "seccomp-log"),
                "{seccomp:?}"
            );
        }
        drop(frontend);
        assert!(daemon.alive(), "{mode}: {}", daemon.log_tail(2000));
        daemon.stop();
    }
}
