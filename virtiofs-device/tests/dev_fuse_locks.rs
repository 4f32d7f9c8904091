//! Root tier: a lock that waits on a host `/dev/fuse` mount served by `PassthroughFs`. One
//! process holds a lock; another's blocking request waits (the server leaves it pending, the
//! channel keeps it and asks again) and is granted once the first lets go, while the mount goes
//! on answering. The order is asserted, not the time.
//!
//! The holder keeps the lock for longer than a second: the server used to give up on a
//! waiting request after one, and the waiter failed with errno 512 (ERESTARTSYS leaked).
//!
//! The two processes are util-linux `flock(1)` (flock(2) locks, which the kernel sends as
//! SETLK/SETLKW with FUSE_LK_FLOCK: the backend declares FLOCK_LOCKS).
//!
//! Run with `cargo test -p virtiofs-device --test dev_fuse_locks -- --ignored` as root.
#![cfg(target_os = "linux")]
#![allow(clippy::unwrap_used, clippy::cast_possible_truncation)]

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::dev_fuse::{abort_connection, mount_fusectl};
use fuse_server::mem::{MemReader, MemWriter};
use fuse_server::{Completion, NegotiationConfig, Server, ServerConfig, TransportFacts};
use passthrough_linux::{Config, PassthroughFs};
use virtiofs_transport::dev_fuse::{ChannelConfig, FuseMount, MountOptions, serve};

#[test]
#[ignore = "needs root and /dev/fuse"]
fn a_blocking_lock_waits_for_the_holder_and_is_granted() {
    if Command::new("flock").arg("--version").output().is_err() {
        eprintln!("skipped: no flock(1) (util-linux)");
        return;
    }
    mount_fusectl();
    let share = tempfile::tempdir().unwrap();
    std::fs::write(share.path().join("f"), b"").unwrap();
    let fs = PassthroughFs::new(
        Config::builder(share.path())
            .flock_locks(true)
            .build()
            .unwrap(),
    )
    .unwrap();
    let buffer = ChannelConfig::default().request_buffer() as u32;
    let server = Server::new(
        fs,
        ServerConfig {
            transport: TransportFacts::dev_fuse(true, buffer),
            negotiation: NegotiationConfig::default(),
        },
    );
    let dir = tempfile::tempdir().unwrap();
    let options = MountOptions {
        default_permissions: true,
        ..MountOptions::default()
    };
    let mount = FuseMount::mount(dir.path(), &options, ChannelConfig::default()).unwrap();
    let handler = |r: &mut MemReader<'_>, w: &mut MemWriter<'_>| {
        matches!(server.handle_message(r, w), Ok(Completion::Pending))
    };
    let file = dir.path().join("f");
    std::thread::scope(|s| {
        let served = s.spawn(|| serve(&mount, 2, handler));
        let (tx, rx) = mpsc::channel();
        let file = &file;
        let dir_path = dir.path();
        s.spawn(move || {
            // The holder: takes the lock, says so, and keeps it until its stdin has a line.
            let mut holder = Command::new("flock")
                .arg("-x")
                .arg(file)
                .args(["sh", "-c", "echo held; read line"])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .unwrap();
            let mut out = BufReader::new(holder.stdout.take().unwrap());
            let mut line = String::new();
            out.read_line(&mut line).unwrap();
            assert_eq!(line.trim(), "held");
            // The waiter: blocks in flock(2) until the holder lets go.
            let mut waiter = Command::new("flock")
                .arg("-x")
                .arg(file)
                .args(["echo", "granted"])
                .stdout(Stdio::piped())
                .spawn()
                .unwrap();
            // Longer than the old server's 1 s bound, after which it answered EINTR, which the
            // kernel turned into errno 512 for the waiter (not an assertion on time: a slower
            // waiter has not got the lock either).
            std::thread::sleep(Duration::from_millis(1500));
            assert!(
                waiter.try_wait().unwrap().is_none(),
                "the waiter got the lock while the holder has it"
            );
            // The mount still answers meanwhile.
            assert!(std::fs::metadata(dir_path.join("f")).unwrap().is_file());
            holder.stdin.take().unwrap().write_all(b"\n").unwrap();
            assert!(holder.wait().unwrap().success());
            let out = waiter.wait_with_output().unwrap();
            assert!(out.status.success());
            assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "granted");
            tx.send(()).unwrap();
        });
        if rx.recv_timeout(Duration::from_secs(60)).is_err() {
            abort_connection(dir.path());
            panic!("the lock was not granted within 60 s");
        }
        mount.unmount().unwrap();
        served.join().unwrap().unwrap();
    });
}
