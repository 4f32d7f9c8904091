//! A hostile guest: names with `/` or `..`, symlinks pointing outside, special files. Nothing
//! outside the share may be read, created or changed.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

mod common;

use std::os::unix::fs::symlink;

use common::*;
use fuse_abi::{Errno, RenameFlags};
use fuse_server::{FileSystem, Handle, Name, NodeId, OpenArgs, SetxattrArgs};

#[test]
fn name_with_slash_is_rejected_before_the_backend() {
    // The server builds `Name`s; a slash never gets through.
    assert_eq!(Name::new(b"../outside/secret").unwrap_err(), Errno::EINVAL);
}

#[test]
fn lookup_dotdot_in_root_is_einval() {
    let f = Fixture::new();
    assert_eq!(f.lookup(ROOT, "..").unwrap_err(), Errno::EINVAL);
    assert_eq!(f.lookup(ROOT, ".").unwrap_err(), Errno::EINVAL);
}

#[test]
fn create_mkdir_unlink_rename_dotdot_are_einval() {
    let f = Fixture::new();
    let before = snapshot(f.tmp.path());
    assert_eq!(f.create(ROOT, "..", 0o644, 0).unwrap_err(), Errno::EINVAL);
    assert_eq!(f.mkdir(ROOT, "..").unwrap_err(), Errno::EINVAL);
    assert_eq!(
        f.fs.unlink(&ctx(), ROOT, name("..")).unwrap_err(),
        Errno::EINVAL
    );
    assert_eq!(
        f.fs.rmdir(&ctx(), ROOT, name("..")).unwrap_err(),
        Errno::EINVAL
    );
    let r = f.fs.rename(
        &ctx(),
        ROOT,
        name(".."),
        ROOT,
        name("x"),
        RenameFlags::empty(),
    );
    assert_eq!(r.unwrap_err(), Errno::EINVAL);
    assert_eq!(snapshot(f.tmp.path()), before);
}

#[test]
fn lookup_symlink_to_outside_returns_the_link_itself() {
    let f = Fixture::new();
    symlink(f.outside(), f.host("out")).unwrap();
    let e = f.lookup(ROOT, "out").unwrap();
    assert_eq!(
        e.attr.mode & fuse_abi::mode::S_IFMT,
        fuse_abi::mode::S_IFLNK
    );
    // Looking up through it as a directory fails: it is not one.
    assert_eq!(f.lookup(e.nodeid, "secret").unwrap_err(), Errno::ENOTDIR);
}

#[test]
fn open_symlink_to_outside_file_is_refused() {
    let f = Fixture::new();
    symlink(f.outside().join("secret"), f.host("s")).unwrap();
    let e = f.lookup(ROOT, "s").unwrap();
    assert_eq!(
        f.open(e.nodeid, libc::O_RDONLY as u32).unwrap_err(),
        Errno::ELOOP
    );
}

#[test]
fn create_through_dangling_symlink_to_outside_creates_nothing() {
    let f = Fixture::new();
    symlink(f.outside().join("new"), f.host("s")).unwrap();
    let before = snapshot(&f.outside());
    let r = f.create(ROOT, "s", 0o644, libc::O_RDWR as u32);
    assert_eq!(r.unwrap_err(), Errno::ELOOP);
    assert_eq!(snapshot(&f.outside()), before);
}

#[test]
fn create_over_symlink_with_o_trunc_leaves_target_intact() {
    let f = Fixture::new();
    symlink(f.outside().join("secret"), f.host("s")).unwrap();
    let r = f.create(ROOT, "s", 0o644, (libc::O_RDWR | libc::O_TRUNC) as u32);
    assert!(r.is_err());
    assert_eq!(
        std::fs::read(f.outside().join("secret")).unwrap(),
        b"secret"
    );
}

#[test]
fn mkdir_and_mknod_under_symlinked_dir_are_enotdir() {
    let f = Fixture::new();
    symlink(f.outside(), f.host("out")).unwrap();
    let link = f.lookup(ROOT, "out").unwrap();
    let before = snapshot(&f.outside());
    assert_eq!(f.mkdir(link.nodeid, "x").unwrap_err(), Errno::ENOTDIR);
    let r =
        f.fs.mknod(&ctx(), &cctx(), link.nodeid, name("y"), 0o100644, 0);
    assert_eq!(r.unwrap_err(), Errno::ENOTDIR);
    assert_eq!(
        f.create(link.nodeid, "z", 0o644, 0).unwrap_err(),
        Errno::ENOTDIR
    );
    let r =
        f.fs.symlink(&ctx(), &cctx(), link.nodeid, name("w"), c"/etc");
    assert_eq!(r.unwrap_err(), Errno::ENOTDIR);
    assert_eq!(snapshot(&f.outside()), before);
}

#[test]
fn unlink_and_rename_under_symlinked_dir_touch_nothing_outside() {
    let f = Fixture::new();
    symlink(f.outside(), f.host("out")).unwrap();
    let link = f.lookup(ROOT, "out").unwrap();
    let before = snapshot(&f.outside());
    assert!(f.fs.unlink(&ctx(), link.nodeid, name("secret")).is_err());
    let r = f.fs.rename(
        &ctx(),
        link.nodeid,
        name("secret"),
        ROOT,
        name("stolen"),
        RenameFlags::empty(),
    );
    assert!(r.is_err());
    std::fs::write(f.host("mine"), b"x").unwrap();
    let r = f.fs.rename(
        &ctx(),
        ROOT,
        name("mine"),
        link.nodeid,
        name("planted"),
        RenameFlags::empty(),
    );
    assert!(r.is_err());
    assert_eq!(snapshot(&f.outside()), before);
    assert!(!f.host("stolen").exists());
}

#[test]
fn link_into_symlinked_dir_is_refused() {
    let f = Fixture::new();
    symlink(f.outside(), f.host("out")).unwrap();
    std::fs::write(f.host("mine"), b"x").unwrap();
    let link = f.lookup(ROOT, "out").unwrap();
    let mine = f.lookup(ROOT, "mine").unwrap();
    let before = snapshot(&f.outside());
    assert!(
        f.fs.link(&ctx(), mine.nodeid, link.nodeid, name("planted"))
            .is_err()
    );
    assert_eq!(snapshot(&f.outside()), before);
}

#[test]
fn link_of_symlink_links_the_symlink_not_its_target() {
    let f = Fixture::new();
    symlink(f.outside().join("secret"), f.host("s")).unwrap();
    let s = f.lookup(ROOT, "s").unwrap();
    let e = f.fs.link(&ctx(), s.nodeid, ROOT, name("s2")).unwrap();
    assert_eq!(
        e.attr.mode & fuse_abi::mode::S_IFMT,
        fuse_abi::mode::S_IFLNK
    );
    assert!(
        std::fs::symlink_metadata(f.host("s2"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
}

#[test]
fn symlink_with_absolute_target_is_created_not_followed() {
    let f = Fixture::new();
    let target = f.outside().join("created-by-guest");
    let t = cstr(target.to_str().unwrap());
    let e =
        f.fs.symlink(&ctx(), &cctx(), ROOT, name("abs"), &t)
            .unwrap();
    assert_eq!(
        e.attr.mode & fuse_abi::mode::S_IFMT,
        fuse_abi::mode::S_IFLNK
    );
    assert!(!target.exists());
    let mut buf = [0u8; 4096];
    let n = f.fs.readlink(&ctx(), e.nodeid, &mut buf).unwrap();
    assert_eq!(&buf[..n], target.to_str().unwrap().as_bytes());
}

#[test]
fn setattr_on_symlink_changes_the_link_not_the_target() {
    needs_root!();
    let f = Fixture::new();
    symlink(f.outside().join("secret"), f.host("s")).unwrap();
    let s = f.lookup(ROOT, "s").unwrap();
    let before = std::fs::metadata(f.outside().join("secret")).unwrap();
    let attr = fuse_server::SetAttr {
        mode: Some(0o777),
        ..Default::default()
    };
    assert_eq!(
        f.fs.setattr(&ctx(), s.nodeid, &attr).unwrap_err(),
        Errno::EOPNOTSUPP
    );
    let attr = fuse_server::SetAttr {
        size: Some(0),
        ..Default::default()
    };
    assert_eq!(
        f.fs.setattr(&ctx(), s.nodeid, &attr).unwrap_err(),
        Errno::EINVAL
    );
    let attr = fuse_server::SetAttr {
        uid: Some(1234),
        gid: Some(1234),
        ..Default::default()
    };
    f.fs.setattr(&ctx(), s.nodeid, &attr).unwrap();
    let after = std::fs::metadata(f.outside().join("secret")).unwrap();
    use std::os::unix::fs::MetadataExt;
    assert_eq!((before.uid(), before.size()), (after.uid(), after.size()));
    assert_eq!(std::fs::symlink_metadata(f.host("s")).unwrap().uid(), 1234);
}

#[test]
fn xattr_on_symlink_does_not_reach_the_target() {
    let f = Fixture::new();
    symlink(f.outside().join("secret"), f.host("s")).unwrap();
    let s = f.lookup(ROOT, "s").unwrap();
    // user.* xattrs are not allowed on symlinks: the call fails on the link itself.
    let r =
        f.fs.setxattr(&ctx(), s.nodeid, &SetxattrArgs::new(c"user.x", b"v"));
    assert!(r.is_err());
    let mut buf = [0u8; 64];
    let n = std::fs::metadata(f.outside().join("secret"))
        .map(|_| 0)
        .unwrap();
    assert_eq!(n, 0);
    assert!(
        f.fs.getxattr(&ctx(), s.nodeid, c"user.x", &mut buf)
            .is_err()
    );
}

#[test]
fn open_fifo_is_refused_without_blocking() {
    let f = Fixture::new();
    let e =
        f.fs.mknod(&ctx(), &cctx(), ROOT, name("p"), libc::S_IFIFO | 0o666, 0)
            .unwrap();
    // Opening a FIFO for reading on the host would block until a writer appears: it is never
    // opened at all.
    assert_eq!(
        f.open(e.nodeid, libc::O_RDONLY as u32).unwrap_err(),
        Errno::EACCES
    );
}

#[test]
fn open_device_node_is_refused() {
    needs_root!();
    let f = Fixture::new();
    // /dev/null's numbers (1, 3) encoded as the kernel does.
    let e =
        f.fs.mknod(
            &ctx(),
            &cctx(),
            ROOT,
            name("null"),
            libc::S_IFCHR | 0o666,
            (1 << 8) | 3,
        )
        .unwrap();
    assert_eq!(e.attr.rdev, (1 << 8) | 3);
    assert_eq!(
        f.open(e.nodeid, libc::O_RDWR as u32).unwrap_err(),
        Errno::EACCES
    );
    let mut buf = [0u8; 16];
    // No handle exists, so no I/O path exists either.
    assert_eq!(f.fs.handle_count(), 0);
    let _ = &mut buf;
}

#[test]
fn setattr_size_on_device_is_einval() {
    needs_root!();
    let f = Fixture::new();
    let e =
        f.fs.mknod(
            &ctx(),
            &cctx(),
            ROOT,
            name("null"),
            libc::S_IFCHR | 0o666,
            (1 << 8) | 3,
        )
        .unwrap();
    let attr = fuse_server::SetAttr {
        size: Some(0),
        ..Default::default()
    };
    assert_eq!(
        f.fs.setattr(&ctx(), e.nodeid, &attr).unwrap_err(),
        Errno::EINVAL
    );
}

#[test]
fn opendir_on_file_is_enotdir_and_lookup_under_file_is_enotdir() {
    let f = Fixture::new();
    std::fs::write(f.host("f"), b"").unwrap();
    let e = f.lookup(ROOT, "f").unwrap();
    assert_eq!(
        f.fs.opendir(&ctx(), e.nodeid, 0).unwrap_err(),
        Errno::ENOTDIR
    );
    assert_eq!(f.lookup(e.nodeid, "x").unwrap_err(), Errno::ENOTDIR);
}

#[test]
fn unknown_handles_and_nodes_are_errors_not_panics() {
    let f = Fixture::new();
    assert_eq!(
        f.read(ROOT, Handle(12345), 0, 10).unwrap_err(),
        Errno::EBADF
    );
    assert_eq!(
        f.write(ROOT, Handle(12345), 0, b"x").unwrap_err(),
        Errno::EBADF
    );
    assert_eq!(
        f.fs.open(&ctx(), NodeId(777), &OpenArgs::new(0))
            .unwrap_err(),
        Errno::ESTALE
    );
    assert_eq!(
        f.fs.readdir(&ctx(), ROOT, Handle(999), 0, &mut Sink::new(1))
            .unwrap_err(),
        Errno::EBADF
    );
    f.fs.forget(&ctx(), NodeId(4242), 1);
}

#[test]
fn readdir_on_file_handle_is_enotdir() {
    let f = Fixture::new();
    let (e, fh) = f.create(ROOT, "f", 0o644, libc::O_RDWR as u32).unwrap();
    assert_eq!(
        f.fs.readdir(&ctx(), e.nodeid, fh, 0, &mut Sink::new(1))
            .unwrap_err(),
        Errno::ENOTDIR
    );
}

#[test]
fn fd_budget_exhaustion_is_enfile_not_a_crash() {
    let f = Fixture::with(|b| {
        b.file_handles(passthrough_linux::FileHandleMode::Never)
            .max_open_fds(16)
    });
    for i in 0..20 {
        std::fs::write(f.host(&format!("f{i}")), b"").unwrap();
    }
    let results: Vec<_> = (0..20).map(|i| f.lookup(ROOT, &format!("f{i}"))).collect();
    assert!(
        results
            .iter()
            .any(|r| r.as_ref().err() == Some(&Errno::ENFILE))
    );
    assert!(f.fs.fds_in_use() <= 16);
}

#[test]
fn openat2_fallback_walk_still_confines() {
    // The fallback is exercised through the same public paths in the unit tests of `sys`; here
    // the observable contract: ".." never resolves, whatever the kernel offers.
    let f = Fixture::new();
    assert_eq!(f.lookup(ROOT, "..").unwrap_err(), Errno::EINVAL);
}
