//! The core operations on a temp directory, called directly.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};

use common::*;
use fuse_abi::{Errno, RenameFlags, mode};
use fuse_server::{FileSystem, NodeId};

#[test]
fn lookup_existing_file_returns_host_attributes() {
    let f = Fixture::new();
    std::fs::write(f.host("a"), b"hello").unwrap();
    let e = f.lookup(ROOT, "a").unwrap();
    let meta = std::fs::metadata(f.host("a")).unwrap();
    assert_eq!(e.attr.ino, meta.ino());
    assert_eq!(e.attr.size, 5);
    assert_eq!(e.attr.mode & mode::S_IFMT, mode::S_IFREG);
}

#[test]
fn lookup_missing_name_is_enoent() {
    let f = Fixture::new();
    assert_eq!(f.lookup(ROOT, "nope").unwrap_err(), Errno::ENOENT);
}

#[test]
fn lookup_twice_same_nodeid_and_two_references() {
    let f = Fixture::new();
    std::fs::write(f.host("a"), b"").unwrap();
    let a = f.lookup(ROOT, "a").unwrap();
    let b = f.lookup(ROOT, "a").unwrap();
    assert_eq!(a.nodeid, b.nodeid);
    assert_eq!(f.fs.lookup_count(a.nodeid), Some(2));
    f.fs.forget(&ctx(), a.nodeid, 2);
    assert_eq!(f.fs.lookup_count(a.nodeid), None);
}

#[test]
fn lookup_hard_links_share_nodeid() {
    let f = Fixture::new();
    std::fs::write(f.host("a"), b"").unwrap();
    std::fs::hard_link(f.host("a"), f.host("b")).unwrap();
    assert_eq!(
        f.lookup(ROOT, "a").unwrap().nodeid,
        f.lookup(ROOT, "b").unwrap().nodeid
    );
}

#[test]
fn forget_root_with_huge_count_keeps_serving() {
    let f = Fixture::new();
    f.fs.forget(&ctx(), ROOT, u64::MAX);
    assert!(f.fs.getattr(&ctx(), ROOT, None).is_ok());
}

#[test]
fn getattr_unknown_nodeid_is_estale() {
    let f = Fixture::new();
    assert_eq!(
        f.fs.getattr(&ctx(), NodeId(999), None).unwrap_err(),
        Errno::ESTALE
    );
}

#[test]
fn create_write_read_roundtrip() {
    let f = Fixture::new();
    let (e, fh) = f.create(ROOT, "f", 0o644, libc::O_RDWR as u32).unwrap();
    assert_eq!(f.write(e.nodeid, fh, 0, b"0123456789").unwrap(), 10);
    assert_eq!(f.read(e.nodeid, fh, 2, 4).unwrap(), b"2345");
    assert_eq!(f.read(e.nodeid, fh, 8, 100).unwrap(), b"89"); // short at EOF
    f.release(e.nodeid, fh);
    assert_eq!(std::fs::read(f.host("f")).unwrap(), b"0123456789");
    assert_eq!(f.fs.handle_count(), 0);
}

#[test]
fn create_exclusive_existing_is_eexist() {
    let f = Fixture::new();
    std::fs::write(f.host("f"), b"").unwrap();
    let r = f.create(ROOT, "f", 0o644, (libc::O_RDWR | libc::O_EXCL) as u32);
    assert_eq!(r.unwrap_err(), Errno::EEXIST);
}

#[test]
fn open_with_trunc_truncates() {
    let f = Fixture::new();
    std::fs::write(f.host("f"), b"abc").unwrap();
    let e = f.lookup(ROOT, "f").unwrap();
    let fh = f
        .open(e.nodeid, (libc::O_WRONLY | libc::O_TRUNC) as u32)
        .unwrap();
    f.release(e.nodeid, fh);
    assert_eq!(std::fs::metadata(f.host("f")).unwrap().len(), 0);
}

#[test]
fn open_append_without_writeback_appends() {
    let f = Fixture::new();
    std::fs::write(f.host("f"), b"abc").unwrap();
    let e = f.lookup(ROOT, "f").unwrap();
    let fh = f
        .open(e.nodeid, (libc::O_WRONLY | libc::O_APPEND) as u32)
        .unwrap();
    f.write(e.nodeid, fh, 0, b"de").unwrap();
    f.release(e.nodeid, fh);
    assert_eq!(std::fs::read(f.host("f")).unwrap(), b"abcde");
}

#[test]
fn mkdir_then_lookup_is_directory_with_mode() {
    let f = Fixture::new();
    let e = f.fs.mkdir(&ctx(), &cctx(), ROOT, name("d"), 0o750).unwrap();
    assert_eq!(e.attr.mode & mode::S_IFMT, mode::S_IFDIR);
    assert_eq!(
        std::fs::metadata(f.host("d")).unwrap().permissions().mode() & 0o777,
        0o750
    );
}

#[test]
fn unlink_and_rmdir_remove_names() {
    let f = Fixture::new();
    std::fs::write(f.host("f"), b"").unwrap();
    std::fs::create_dir(f.host("d")).unwrap();
    f.fs.unlink(&ctx(), ROOT, name("f")).unwrap();
    f.fs.rmdir(&ctx(), ROOT, name("d")).unwrap();
    assert!(!f.host("f").exists() && !f.host("d").exists());
}

#[test]
fn rmdir_non_empty_is_enotempty() {
    let f = Fixture::new();
    std::fs::create_dir(f.host("d")).unwrap();
    std::fs::write(f.host("d/x"), b"").unwrap();
    assert_eq!(
        f.fs.rmdir(&ctx(), ROOT, name("d")).unwrap_err(),
        Errno::ENOTEMPTY
    );
}

#[test]
fn rename_moves_between_directories() {
    let f = Fixture::new();
    std::fs::write(f.host("a"), b"x").unwrap();
    let d = f.mkdir(ROOT, "d").unwrap();
    f.fs.rename(
        &ctx(),
        ROOT,
        name("a"),
        d.nodeid,
        name("b"),
        RenameFlags::empty(),
    )
    .unwrap();
    assert_eq!(std::fs::read(f.host("d/b")).unwrap(), b"x");
}

#[test]
fn rename_noreplace_existing_is_eexist() {
    let f = Fixture::new();
    std::fs::write(f.host("a"), b"").unwrap();
    std::fs::write(f.host("b"), b"").unwrap();
    let r = f.fs.rename(
        &ctx(),
        ROOT,
        name("a"),
        ROOT,
        name("b"),
        RenameFlags::NOREPLACE,
    );
    assert_eq!(r.unwrap_err(), Errno::EEXIST);
}

#[test]
fn rename_exchange_swaps() {
    let f = Fixture::new();
    std::fs::write(f.host("a"), b"A").unwrap();
    std::fs::write(f.host("b"), b"B").unwrap();
    f.fs.rename(
        &ctx(),
        ROOT,
        name("a"),
        ROOT,
        name("b"),
        RenameFlags::EXCHANGE,
    )
    .unwrap();
    assert_eq!(std::fs::read(f.host("a")).unwrap(), b"B");
}

#[test]
fn rename_whiteout_leaves_char_device_0_0() {
    needs_root!();
    let f = Fixture::new();
    std::fs::write(f.host("a"), b"A").unwrap();
    f.fs.rename(
        &ctx(),
        ROOT,
        name("a"),
        ROOT,
        name("b"),
        RenameFlags::WHITEOUT,
    )
    .unwrap();
    let meta = std::fs::symlink_metadata(f.host("a")).unwrap();
    assert_eq!(meta.mode() & mode::S_IFMT, mode::S_IFCHR);
    assert_eq!(meta.rdev(), 0);
}

#[test]
fn readdir_lists_everything_once() {
    let f = Fixture::new();
    for i in 0..50 {
        std::fs::write(f.host(&format!("f{i}")), b"").unwrap();
    }
    let names = f.list(ROOT);
    assert_eq!(names.len(), 52); // 50 files plus "." and ".."
}

#[test]
fn readdir_offsets_stable_while_directory_changes() {
    let f = Fixture::new();
    for i in 0..100 {
        std::fs::write(f.host(&format!("f{i:03}")), b"").unwrap();
    }
    let fh = f.fs.opendir(&ctx(), ROOT, 0).unwrap().fh;
    // Read in pages of 7 entries, deleting and adding names between pages: every name that
    // exists throughout must be seen exactly once.
    let mut seen = Vec::new();
    let mut off = 0;
    let mut round = 0;
    loop {
        let mut sink = Sink::new(7);
        f.fs.readdir(&ctx(), ROOT, fh, off, &mut sink).unwrap();
        if sink.entries.is_empty() {
            break;
        }
        off = sink.entries.last().unwrap().offset;
        seen.extend(sink.entries.into_iter().map(|e| e.name));
        std::fs::write(f.host(&format!("new{round}")), b"").unwrap();
        round += 1;
    }
    f.fs.releasedir(&ctx(), ROOT, fh, 0).unwrap();
    for i in 0..100 {
        let n = format!("f{i:03}");
        assert_eq!(seen.iter().filter(|s| **s == n).count(), 1, "{n}");
    }
}

#[test]
fn readdirplus_takes_references_only_for_real_entries() {
    let f = Fixture::new();
    std::fs::write(f.host("a"), b"").unwrap();
    let fh = f.fs.opendir(&ctx(), ROOT, 0).unwrap().fh;
    let mut sink = Sink::new(usize::MAX);
    f.fs.readdirplus(&ctx(), ROOT, fh, 0, &mut sink).unwrap();
    let a = sink.get("a").entry;
    let dot = sink.get("..").entry;
    assert_ne!(a.nodeid, NodeId::NONE);
    assert_eq!(dot.nodeid, NodeId(0));
    assert_eq!(f.fs.lookup_count(a.nodeid), Some(1));
}

#[test]
fn readdirplus_full_sink_takes_no_reference() {
    let f = Fixture::new();
    std::fs::write(f.host("a"), b"").unwrap();
    let fh = f.fs.opendir(&ctx(), ROOT, 0).unwrap().fh;
    let mut sink = Sink::new(0);
    f.fs.readdirplus(&ctx(), ROOT, fh, 0, &mut sink).unwrap();
    assert_eq!(f.fs.inode_count(), 1);
}

#[test]
fn statfs_reports_blocks() {
    let f = Fixture::new();
    let s = f.fs.statfs(&ctx(), ROOT).unwrap();
    assert!(s.blocks > 0 && s.bsize > 0);
}

#[test]
fn init_again_drops_nodes_and_handles() {
    let f = Fixture::new();
    let (e, _fh) = f.create(ROOT, "f", 0o644, libc::O_RDWR as u32).unwrap();
    f.negotiate(f.fs.declared_flags());
    assert_eq!(
        f.fs.getattr(&ctx(), e.nodeid, None).unwrap_err(),
        Errno::ESTALE
    );
    assert_eq!(f.fs.handle_count(), 0);
    assert_eq!(f.fs.fds_in_use(), 1); // the root's descriptor
}
