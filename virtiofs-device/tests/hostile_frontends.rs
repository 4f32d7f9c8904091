//! The daemon binary against frontends that misbehave on the vhost-user socket itself, before
//! any handshake: they connect and close at once (hundreds of times, fast), send a truncated
//! header, an unknown request code, a size no message may have, or close in the middle of a
//! message. None of that may end the daemon or cost it a descriptor: a real frontend is served
//! afterwards, and the daemon holds no more descriptors than before the burst.
#![cfg(all(target_os = "linux", feature = "daemon"))]
#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

use std::fs;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use virtiofs_frontend::process::Daemon;
use virtiofs_frontend::{Config, Frontend};

const TIMEOUT: Duration = Duration::from_secs(10);
/// A descriptor limit low enough that a descriptor lost per connection ends a daemon within
/// a few dozen connections (it starts with about twenty open).
const NOFILE: &str = "64";
/// Descriptors the count may differ by between two idle moments (less than one connection
/// holds; the burst would have lost 800).
const SLACK: usize = 4;
/// Connections that close at once.
const PROBES: usize = 200;

/// VHOST_USER_GET_FEATURES and VHOST_USER_SET_FEATURES.
const GET_FEATURES: u32 = 1;
const SET_FEATURES: u32 = 2;
/// The header's flags: version 1.
const VERSION_1: u32 = 0x1;

fn start(dir: &Path) -> (Daemon, PathBuf) {
    let share = dir.join("share");
    fs::create_dir_all(&share).unwrap();
    let socket = dir.join("vhost.sock");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_virtiofs-device"));
    cmd.arg("--socket-path")
        .arg(&socket)
        .arg("--shared-dir")
        .arg(&share)
        .args(["--rlimit-nofile", NOFILE, "--log-level", "info"])
        .env_remove("RUST_LOG");
    let mut daemon = Daemon::spawn(cmd, &dir.join("daemon.log")).unwrap();
    daemon.wait_for_socket(&socket, TIMEOUT).unwrap();
    (daemon, socket)
}

/// A vhost-user message header.
fn header(request: u32, size: u32) -> Vec<u8> {
    [request, VERSION_1, size]
        .iter()
        .flat_map(|w| w.to_le_bytes())
        .collect()
}

/// Connects, or fails the test with the daemon's log (a refused connection: it ended).
fn connect(daemon: &mut Daemon, socket: &Path, what: &str) -> UnixStream {
    match UnixStream::connect(socket) {
        Ok(s) => s,
        Err(e) => {
            // The sandbox's parent ends shortly after the daemon, its last words shortly after.
            let deadline = Instant::now() + Duration::from_secs(2);
            while daemon.alive() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            std::thread::sleep(Duration::from_millis(100));
            panic!(
                "{what}: cannot connect ({e}); daemon {}; it said:\n{}",
                match daemon.exit_status() {
                    Some(status) => format!("ended ({status})"),
                    None => String::from("runs"),
                },
                daemon.log_tail(3000)
            )
        }
    }
}

/// Sends `bytes`, then waits (bounded) for the daemon to close the connection, which it does
/// once it has read something it refuses.
fn send_and_wait_for_close(stream: &mut UnixStream, bytes: &[u8]) {
    stream.write_all(bytes).unwrap();
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    let mut buf = [0u8; 64];
    let deadline = Instant::now() + TIMEOUT;
    loop {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(_) => assert!(Instant::now() < deadline, "the daemon keeps answering"),
        }
    }
}

/// Open descriptors of the serving process, once the count has settled (a connection's threads
/// end shortly after it). `None` where `/proc/PID/fd` cannot be read (not root).
fn settled_fds(daemon: &Daemon) -> Option<usize> {
    let mut last = daemon.open_fds().ok()?;
    for _ in 0..50 {
        std::thread::sleep(Duration::from_millis(20));
        let now = daemon.open_fds().ok()?;
        if now == last {
            return Some(now);
        }
        last = now;
    }
    Some(last)
}

#[test]
fn hostile_frontends_neither_end_the_daemon_nor_cost_it_descriptors() {
    let dir = tempfile::tempdir().unwrap();
    let (mut daemon, socket) = start(dir.path());
    // A first frontend, so that everything a connection sets up once has been set up.
    let mut frontend = Frontend::connect(&socket, Config::new(1)).unwrap();
    frontend.init().unwrap();
    drop(frontend);
    let before = settled_fds(&daemon);

    // Connect and close at once: a socket probe, a frontend that dies at start.
    for _ in 0..PROBES {
        drop(connect(&mut daemon, &socket, "connect and close"));
    }
    // A truncated header, then close.
    let mut s = connect(&mut daemon, &socket, "truncated header");
    s.write_all(&header(GET_FEATURES, 0)[..5]).unwrap();
    drop(s);
    // A request code no vhost-user version has.
    let mut s = connect(&mut daemon, &socket, "unknown request");
    send_and_wait_for_close(&mut s, &header(0xdead, 0));
    // A size no message may have (4 GiB - 1).
    let mut s = connect(&mut daemon, &socket, "huge size");
    send_and_wait_for_close(&mut s, &header(GET_FEATURES, u32::MAX));
    // SET_FEATURES announces 8 bytes of body; 3 come, then the connection closes.
    let mut s = connect(&mut daemon, &socket, "close mid-message");
    let mut msg = header(SET_FEATURES, 8);
    msg.extend_from_slice(&[1, 2, 3]);
    s.write_all(&msg).unwrap();
    drop(s);
    // And the connect-and-close burst once more after the malformed ones.
    for _ in 0..PROBES {
        drop(connect(&mut daemon, &socket, "connect and close"));
    }

    // A real frontend is served: SET_OWNER, features, memory table, queues, FUSE_INIT.
    let mut frontend = match Frontend::connect(&socket, Config::new(1)) {
        Ok(f) => f,
        Err(e) => panic!(
            "a real frontend is not served after the burst: {e}; it said:\n{}",
            daemon.log_tail(3000)
        ),
    };
    frontend.init().unwrap();
    drop(frontend);
    assert!(daemon.alive(), "{}", daemon.log_tail(3000));

    // Nothing was kept of the hundreds of connections.
    match (before, settled_fds(&daemon)) {
        (Some(before), Some(after)) => assert!(
            after <= before + SLACK,
            "the daemon held {before} descriptors before the burst and {after} after"
        ),
        _ => eprintln!("the daemon's descriptors cannot be counted here (needs root)"),
    }
    daemon.stop();
}
