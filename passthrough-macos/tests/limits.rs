//! Budgets with an explicit size: descriptors (handles, directory streams, lock descriptions)
//! and the inode table answer `ENFILE` when spent, and give their units back.
#![cfg(target_os = "linux")]
#![allow(clippy::unwrap_used)]

mod common;

use common::{Fixture, Sink, ctx, root};
use fuse_abi::Errno;
use fuse_server::{FileSystem, Lock, LockArgs, LockOwner, NodeId};

const O_RDWR: u32 = 2;

#[test]
fn the_inode_table_is_bounded() {
    let fx = Fixture::with(|c| passthrough_macos::Config { max_inodes: 5, ..c });
    for i in 0..8 {
        std::fs::write(fx.host_path(&format!("f{i}")), b"").unwrap();
    }
    let held: Vec<NodeId> = (0..5)
        .map(|i| fx.lookup(root(), &format!("f{i}")).unwrap().nodeid)
        .collect();
    // More lookups of held inodes cost nothing; a sixth inode is refused, and so is a creation.
    assert_eq!(fx.lookup(root(), "f0").unwrap().nodeid, held[0]);
    assert_eq!(fx.lookup(root(), "f5").unwrap_err(), Errno::ENFILE);
    assert_eq!(fx.mkdir(root(), "d").unwrap_err(), Errno::ENFILE);
    // FORGET frees the entry (f0 was looked up twice).
    fx.fs.forget(&ctx(), held[0], 2);
    assert!(fx.lookup(root(), "f5").is_ok());
    assert_eq!(fx.lookup(root(), "f6").unwrap_err(), Errno::ENFILE);
}

#[test]
fn directory_streams_count_against_the_descriptor_budget() {
    // The share's root is the adapter's, not counted; "d" is one identity.
    let fx = Fixture::with(|c| passthrough_macos::Config { max_fds: 7, ..c });
    let d = fx.mkdir(root(), "d").unwrap().nodeid;
    let mut open = Vec::new();
    for _ in 0..3 {
        let fh = fx.fs.opendir(&ctx(), d, 0).unwrap().fh;
        let mut sink = Sink::new(10);
        fx.fs.readdir(&ctx(), d, fh, 0, &mut sink).unwrap();
        open.push(fh);
    }
    // 1 identity + 3 × (handle + stream) = 7.
    assert_eq!(fx.fs.fd_budget(), (7, 7));
    assert_eq!(fx.fs.opendir(&ctx(), d, 0).unwrap_err(), Errno::ENFILE);
    fx.fs.releasedir(&ctx(), d, open.pop().unwrap(), 0).unwrap();
    let fh = fx.fs.opendir(&ctx(), d, 0).unwrap().fh;
    let mut sink = Sink::new(10);
    fx.fs.readdir(&ctx(), d, fh, 0, &mut sink).unwrap();
    assert_eq!(fx.fs.fd_budget(), (7, 7));
}

#[test]
fn lock_descriptions_count_against_the_descriptor_budget() {
    let fx = Fixture::with(|c| passthrough_macos::Config {
        max_fds: 4,
        posix_locks: true,
        ..c
    });
    let (e, fh) = fx.create(root(), "f", 0o644, O_RDWR).unwrap();
    // 1 identity + 1 handle.
    assert_eq!(fx.fs.fd_budget().0, 2);
    let lock = |start| Lock {
        start,
        end: start,
        typ: 1,
        pid: 1,
    };
    let setlk = |owner: LockOwner, start| {
        fx.fs
            .setlk(&ctx(), e.nodeid, &LockArgs::new(fh, owner, lock(start)))
    };
    setlk(LockOwner(1), 0).unwrap();
    setlk(LockOwner(2), 1).unwrap();
    // Each owner's description is a descriptor: a third owner finds the budget spent.
    assert_eq!(setlk(LockOwner(3), 2).unwrap_err(), Errno::ENFILE);
    // A FLUSH (the owner's close) gives its description back.
    fx.fs.flush(&ctx(), e.nodeid, fh, LockOwner(1)).unwrap();
    setlk(LockOwner(3), 2).unwrap();
    assert_eq!(fx.open(e.nodeid, O_RDWR).unwrap_err(), Errno::ENFILE);
}
