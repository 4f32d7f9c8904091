//! Every guest-driven resource has a budget (issue 11): running out is an errno, never a panic,
//! and releasing gives the share back.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

mod common;

use common::*;
use fuse_abi::Errno;
use fuse_server::{FileSystem, Lock, LockArgs, LockOwner, NodeId};
use passthrough_linux::FileHandleMode;

fn files(f: &Fixture, n: usize) {
    for i in 0..n {
        std::fs::write(f.host(&format!("f{i}")), b"").unwrap();
    }
}

#[test]
fn descriptor_budget_exhausted_by_opens_is_enfile_then_recovers_on_release() {
    let f = Fixture::with(|b| b.file_handles(FileHandleMode::Never).max_open_fds(16));
    files(&f, 1);
    let e = f.lookup(ROOT, "f0").unwrap(); // root + f0: two descriptors
    let mut fhs = Vec::new();
    let err = loop {
        match f.open(e.nodeid, libc::O_RDONLY as u32) {
            Ok(fh) => fhs.push(fh),
            Err(e) => break e,
        }
        assert!(fhs.len() <= 16, "the budget did not hold");
    };
    assert_eq!(err, Errno::ENFILE);
    assert_eq!(fhs.len(), 14);
    assert_eq!(f.fs.fds_in_use(), 16);
    f.release(e.nodeid, fhs.pop().unwrap());
    assert!(f.open(e.nodeid, libc::O_RDONLY as u32).is_ok());
}

#[test]
fn inode_budget_bounds_the_table_and_recovers_on_forget() {
    // File handles hold no descriptor: the inode budget bounds the table whatever the mode
    // (the descriptor budget is made larger here so that the inode budget is reached first).
    let f = Fixture::with(|b| b.max_inodes(16).max_open_fds(1000));
    files(&f, 20);
    let mut ids = Vec::new();
    let err = loop {
        match f.lookup(ROOT, &format!("f{}", ids.len())) {
            Ok(e) => ids.push(e.nodeid),
            Err(e) => break e,
        }
        assert!(ids.len() < 20, "the inode budget did not hold");
    };
    assert_eq!(err, Errno::ENFILE);
    assert_eq!(ids.len(), 15); // the root is the 16th
    assert_eq!(f.fs.inode_count(), 16);
    // A name already known costs nothing: another lookup of it still works.
    assert_eq!(f.lookup(ROOT, "f0").unwrap().nodeid, ids[0]);
    // Creating requests are refused the same way, and create nothing they cannot hold.
    assert_eq!(
        f.create(ROOT, "new", 0o644, libc::O_RDWR as u32)
            .unwrap_err(),
        Errno::ENFILE
    );
    assert!(!f.host("new").exists());
    // FORGET gives entries back.
    f.fs.forget(&ctx(), ids[1], 1);
    let e = f.lookup(ROOT, "f15").unwrap();
    assert_ne!(e.nodeid, NodeId::NONE);
}

#[test]
fn directory_handle_budget_is_enfile_then_recovers_on_releasedir() {
    let f = Fixture::with(|b| b.max_dir_handles(3));
    let mut fhs = Vec::new();
    for _ in 0..3 {
        fhs.push(f.fs.opendir(&ctx(), ROOT, 0).unwrap().fh);
    }
    assert_eq!(f.fs.opendir(&ctx(), ROOT, 0).unwrap_err(), Errno::ENFILE);
    assert_eq!(f.fs.dir_handles_in_use(), 3);
    f.fs.releasedir(&ctx(), ROOT, fhs.pop().unwrap(), 0)
        .unwrap();
    assert!(f.fs.opendir(&ctx(), ROOT, 0).is_ok());
}

#[test]
fn lock_description_budget_is_enolck_then_recovers_on_flush() {
    let f = Fixture::with(|b| b.max_lock_fds(2));
    let (e, fh) = f.create(ROOT, "f", 0o644, libc::O_RDWR as u32).unwrap();
    let lock = |start: u64| Lock {
        start,
        end: start,
        typ: 1, // F_WRLCK
        pid: 0,
    };
    for owner in [1u64, 2] {
        f.fs.setlk(
            &ctx(),
            e.nodeid,
            &LockArgs::new(fh, LockOwner(owner), lock(owner)),
        )
        .unwrap();
    }
    assert_eq!(
        f.fs.setlk(&ctx(), e.nodeid, &LockArgs::new(fh, LockOwner(3), lock(3)))
            .unwrap_err(),
        Errno::ENOLCK
    );
    assert_eq!(f.fs.lock_fds_in_use(), 2);
    // GETLK of a new owner needs a description too: the same errno, no panic.
    assert_eq!(
        f.fs.getlk(&ctx(), e.nodeid, &LockArgs::new(fh, LockOwner(4), lock(9)))
            .unwrap_err(),
        Errno::ENOLCK
    );
    // FLUSH (close in the guest) of owner 1 drops its description.
    f.fs.flush(&ctx(), e.nodeid, fh, LockOwner(1)).unwrap();
    assert_eq!(f.fs.lock_fds_in_use(), 1);
    f.fs.setlk(&ctx(), e.nodeid, &LockArgs::new(fh, LockOwner(3), lock(3)))
        .unwrap();
}

#[test]
fn lock_descriptions_go_with_the_node() {
    let f = Fixture::new();
    let (e, fh) = f.create(ROOT, "f", 0o644, libc::O_RDWR as u32).unwrap();
    let lock = Lock {
        start: 0,
        end: 0,
        typ: 1,
        pid: 0,
    };
    f.fs.setlk(&ctx(), e.nodeid, &LockArgs::new(fh, LockOwner(7), lock))
        .unwrap();
    assert_eq!(f.fs.lock_fds_in_use(), 1);
    f.release(e.nodeid, fh);
    f.fs.forget(&ctx(), e.nodeid, 1);
    assert_eq!(f.fs.lock_fds_in_use(), 0);
}
