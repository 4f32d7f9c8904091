//! Who creates what: per-thread credentials, supplementary group, umask, ALLOW_IDMAP's
//! unmapped ids, HANDLE_KILLPRIV_V2. Identity switching needs root (the test process runs as
//! root here): those tests pass with a note for a non-root developer, since a non-root daemon
//! creates everything as itself by design.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};

use common::*;
use fuse_abi::{Errno, INVALID_UIDGID, InitFlags, OpenInFlags, WriteFlags};
use fuse_server::{
    CreateArgs, CreateContext, FileSystem, NodeId, OpenArgs, ReleaseArgs, SetAttr, WriteArgs,
};

fn world_writable_dir(f: &Fixture) -> NodeId {
    let d = f.mkdir(ROOT, "pub").unwrap();
    std::fs::set_permissions(f.host("pub"), std::fs::Permissions::from_mode(0o777)).unwrap();
    d.nodeid
}

#[test]
fn create_runs_as_the_caller() {
    needs_root!();
    let f = Fixture::new();
    let d = world_writable_dir(&f);
    let cc = CreateContext::default();
    let (e, _) =
        f.fs.create(
            &ctx_as(1000, 1001),
            &cc,
            d,
            &CreateArgs::new(name("f"), 0o644, OpenArgs::new(libc::O_RDWR as u32)),
        )
        .unwrap();
    assert_eq!((e.attr.uid, e.attr.gid), (1000, 1001));
    f.fs.mkdir(&ctx_as(1002, 1003), &cc, d, name("d"), 0o755)
        .unwrap();
    let m = std::fs::metadata(f.host("pub/d")).unwrap();
    assert_eq!((m.uid(), m.gid()), (1002, 1003));
    // The thread is root again afterwards: a root-only directory is still writable.
    f.mkdir(ROOT, "after").unwrap();
}

#[test]
fn create_as_caller_without_permission_is_eacces() {
    needs_root!();
    let f = Fixture::new();
    let _ = f.mkdir(ROOT, "closed").unwrap();
    std::fs::set_permissions(f.host("closed"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let d = f.lookup(ROOT, "closed").unwrap().nodeid;
    let r = f.fs.mkdir(
        &ctx_as(1000, 1000),
        &CreateContext::default(),
        d,
        name("x"),
        0o755,
    );
    assert_eq!(r.unwrap_err(), Errno::EACCES);
}

#[test]
fn create_with_unmapped_ids_is_eoverflow_and_creates_nothing() {
    let f = Fixture::new();
    let r = f.fs.mkdir(
        &ctx_as(INVALID_UIDGID, INVALID_UIDGID),
        &CreateContext::default(),
        ROOT,
        name("x"),
        0o755,
    );
    assert_eq!(r.unwrap_err(), Errno::EOVERFLOW);
    assert!(!f.host("x").exists());
}

#[test]
fn non_creating_requests_with_unmapped_ids_work() {
    // ALLOW_IDMAP: every non-creating request carries 0xFFFFFFFF.
    let f = Fixture::new();
    std::fs::write(f.host("f"), b"abc").unwrap();
    let idm = ctx_as(INVALID_UIDGID, INVALID_UIDGID);
    let e = f.fs.lookup(&idm, ROOT, name("f")).unwrap();
    f.fs.getattr(&idm, e.nodeid, None).unwrap();
    let fh =
        f.fs.open(&idm, e.nodeid, &OpenArgs::new(libc::O_RDWR as u32))
            .unwrap()
            .fh;
    f.fs.setattr(
        &idm,
        e.nodeid,
        &SetAttr {
            size: Some(1),
            ..Default::default()
        },
    )
    .unwrap();
    f.fs.access(&idm, e.nodeid, 0).unwrap();
    assert_eq!(f.fs.access(&idm, e.nodeid, 4).unwrap_err(), Errno::EACCES);
    f.fs.release(&idm, e.nodeid, &ReleaseArgs::new(fh)).unwrap();
}

#[test]
fn supplementary_group_lets_caller_create_in_group_dir() {
    needs_root!();
    let f = Fixture::new();
    f.mkdir(ROOT, "g").unwrap();
    std::os::unix::fs::chown(f.host("g"), Some(0), Some(2000)).unwrap();
    std::fs::set_permissions(f.host("g"), std::fs::Permissions::from_mode(0o770)).unwrap();
    let g = f.lookup(ROOT, "g").unwrap().nodeid;
    let without = CreateContext::default();
    let r =
        f.fs.mkdir(&ctx_as(1000, 1000), &without, g, name("a"), 0o755);
    assert_eq!(r.unwrap_err(), Errno::EACCES);
    let with = CreateContext {
        supp_gid: Some(2000),
        ..Default::default()
    };
    f.fs.mkdir(&ctx_as(1000, 1000), &with, g, name("b"), 0o755)
        .unwrap();
}

#[test]
fn dont_mask_applies_the_request_umask() {
    let f = Fixture::new();
    let cc = CreateContext {
        umask: 0o027,
        ..Default::default()
    };
    let e = f.fs.mkdir(&ctx(), &cc, ROOT, name("d"), 0o777).unwrap();
    assert_eq!(e.attr.mode & 0o777, 0o750);
}

#[test]
fn without_dont_mask_the_umask_field_is_ignored() {
    let f = Fixture::new();
    f.negotiate(f.fs.declared_flags() - InitFlags::DONT_MASK);
    let cc = CreateContext {
        umask: 0o027,
        ..Default::default()
    };
    let e = f.fs.mkdir(&ctx(), &cc, ROOT, name("d"), 0o777).unwrap();
    assert_eq!(e.attr.mode & 0o777, 0o777);
}

#[test]
fn killpriv_v2_write_clears_suid_and_group_exec_sgid() {
    let f = Fixture::with(|b| b.killpriv_v2(true));
    let (e, fh) = f.create(ROOT, "f", 0o755, libc::O_RDWR as u32).unwrap();
    std::fs::set_permissions(f.host("f"), std::fs::Permissions::from_mode(0o6755)).unwrap();
    let mut r = fuse_server::mem::MemReader::new(b"x");
    f.fs.write(
        &ctx(),
        e.nodeid,
        &WriteArgs::new(fh, 0, 1).with_write_flags(WriteFlags::KILL_SUIDGID),
        &mut r,
    )
    .unwrap();
    assert_eq!(
        std::fs::metadata(f.host("f")).unwrap().permissions().mode() & 0o7777,
        0o755
    );
}

#[test]
fn write_without_kill_flag_keeps_suid() {
    let f = Fixture::with(|b| b.killpriv_v2(true));
    let (e, fh) = f.create(ROOT, "f", 0o755, libc::O_RDWR as u32).unwrap();
    std::fs::set_permissions(f.host("f"), std::fs::Permissions::from_mode(0o4755)).unwrap();
    f.write(e.nodeid, fh, 0, b"x").unwrap();
    assert_eq!(
        std::fs::metadata(f.host("f")).unwrap().permissions().mode() & 0o7777,
        0o4755
    );
}

#[test]
fn open_trunc_with_kill_suidgid_clears_suid() {
    let f = Fixture::with(|b| b.killpriv_v2(true));
    std::fs::write(f.host("f"), b"abc").unwrap();
    std::fs::set_permissions(f.host("f"), std::fs::Permissions::from_mode(0o4755)).unwrap();
    let e = f.lookup(ROOT, "f").unwrap();
    let flags = (libc::O_WRONLY | libc::O_TRUNC) as u32;
    f.fs.open(
        &ctx(),
        e.nodeid,
        &OpenArgs::new(flags).with_open_flags(OpenInFlags::KILL_SUIDGID),
    )
    .unwrap();
    assert_eq!(
        std::fs::metadata(f.host("f")).unwrap().permissions().mode() & 0o7777,
        0o755
    );
}

/// The guest sets the kill flag for a caller outside the file's group even when the set-gid
/// file is not group-executable (`setattr_should_drop_sgid`); one in the group keeps the bit.
#[test]
fn killpriv_v2_write_clears_sgid_of_a_writer_outside_the_group() {
    let f = Fixture::with(|b| b.killpriv_v2(true));
    let (e, fh) = f.create(ROOT, "f", 0o666, libc::O_RDWR as u32).unwrap();
    let group = std::fs::metadata(f.host("f")).unwrap().gid();
    let outsider = group.wrapping_add(1000);
    for (writer_gid, after) in [(group, 0o2666), (outsider, 0o666)] {
        std::fs::set_permissions(f.host("f"), std::fs::Permissions::from_mode(0o6666)).unwrap();
        let mut r = fuse_server::mem::MemReader::new(b"x");
        f.fs.write(
            &ctx_as(1000, writer_gid),
            e.nodeid,
            &WriteArgs::new(fh, 0, 1).with_write_flags(WriteFlags::KILL_SUIDGID),
            &mut r,
        )
        .unwrap();
        let mode = std::fs::metadata(f.host("f")).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, after, "writer gid {writer_gid}, file group {group}");
    }
}

/// The same rule for a truncate with FATTR_KILL_SUIDGID; a chown keeps such a set-gid bit.
#[test]
fn killpriv_v2_truncate_clears_sgid_of_a_writer_outside_the_group() {
    let f = Fixture::with(|b| b.killpriv_v2(true));
    std::fs::write(f.host("f"), b"abc").unwrap();
    let group = std::fs::metadata(f.host("f")).unwrap().gid();
    let e = f.lookup(ROOT, "f").unwrap();
    std::fs::set_permissions(f.host("f"), std::fs::Permissions::from_mode(0o6666)).unwrap();
    let truncate = SetAttr {
        size: Some(0),
        kill_suidgid: true,
        ..Default::default()
    };
    f.fs.setattr(&ctx_as(1000, group.wrapping_add(1000)), e.nodeid, &truncate)
        .unwrap();
    let mode = std::fs::metadata(f.host("f")).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o666);
}
