//! Attributes and the remaining file operations.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};

use common::*;
use fuse_abi::{Errno, SetattrValid, mode};
use fuse_server::{
    CopyFileRangeArgs, FileSystem, LockOwner, OpenArgs, SetAttr, TimeOrNow, Timespec, TmpfileArgs,
};

#[test]
fn setattr_mode_uid_gid_apply() {
    needs_root!();
    let f = Fixture::new();
    std::fs::write(f.host("f"), b"").unwrap();
    let e = f.lookup(ROOT, "f").unwrap();
    let attr = SetAttr {
        mode: Some(0o4711),
        uid: Some(1000),
        gid: Some(1001),
        ..Default::default()
    };
    let r = f.fs.setattr(&ctx(), e.nodeid, &attr).unwrap();
    let meta = std::fs::metadata(f.host("f")).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (1000, 1001));
    assert_eq!(r.attr.uid, 1000);
    // chown after chmod clears set-user-id on the host, as on any Linux filesystem.
    assert_eq!(meta.permissions().mode() & 0o777, 0o711);
}

#[test]
fn setattr_size_without_handle_truncates() {
    let f = Fixture::new();
    std::fs::write(f.host("f"), b"0123456789").unwrap();
    let e = f.lookup(ROOT, "f").unwrap();
    let r =
        f.fs.setattr(
            &ctx(),
            e.nodeid,
            &SetAttr {
                size: Some(3),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(r.attr.size, 3);
    assert_eq!(std::fs::read(f.host("f")).unwrap(), b"012");
}

#[test]
fn setattr_size_through_handle_extends() {
    let f = Fixture::new();
    let (e, fh) = f.create(ROOT, "f", 0o644, libc::O_RDWR as u32).unwrap();
    let attr = SetAttr {
        size: Some(4096),
        fh: Some(fh),
        valid: SetattrValid::SIZE | SetattrValid::FH,
        ..Default::default()
    };
    f.fs.setattr(&ctx(), e.nodeid, &attr).unwrap();
    assert_eq!(std::fs::metadata(f.host("f")).unwrap().len(), 4096);
}

#[test]
fn setattr_size_on_directory_is_eisdir() {
    let f = Fixture::new();
    let d = f.mkdir(ROOT, "d").unwrap();
    let r = f.fs.setattr(
        &ctx(),
        d.nodeid,
        &SetAttr {
            size: Some(0),
            ..Default::default()
        },
    );
    assert_eq!(r.unwrap_err(), Errno::EISDIR);
}

#[test]
fn setattr_times_explicit_and_now() {
    let f = Fixture::new();
    std::fs::write(f.host("f"), b"").unwrap();
    let e = f.lookup(ROOT, "f").unwrap();
    let t = Timespec {
        sec: 1_000_000,
        nsec: 5,
    };
    let attr = SetAttr {
        atime: Some(TimeOrNow::Time(t)),
        mtime: Some(TimeOrNow::Now),
        ..Default::default()
    };
    let r = f.fs.setattr(&ctx(), e.nodeid, &attr).unwrap();
    assert_eq!(r.attr.atime, t);
    assert!(r.attr.mtime.sec > 1_600_000_000);
}

#[test]
fn setattr_times_on_symlink_change_the_link() {
    let f = Fixture::new();
    std::os::unix::fs::symlink("nowhere", f.host("l")).unwrap();
    let e = f.lookup(ROOT, "l").unwrap();
    let t = Timespec {
        sec: 12345,
        nsec: 0,
    };
    let attr = SetAttr {
        mtime: Some(TimeOrNow::Time(t)),
        ..Default::default()
    };
    assert_eq!(f.fs.setattr(&ctx(), e.nodeid, &attr).unwrap().attr.mtime, t);
}

#[test]
fn setattr_kill_suidgid_on_truncate_clears_bits() {
    let f = Fixture::with(|b| b.killpriv_v2(true));
    std::fs::write(f.host("f"), b"abc").unwrap();
    std::fs::set_permissions(f.host("f"), std::fs::Permissions::from_mode(0o6755)).unwrap();
    let e = f.lookup(ROOT, "f").unwrap();
    let attr = SetAttr {
        size: Some(0),
        kill_suidgid: true,
        ..Default::default()
    };
    f.fs.setattr(&ctx(), e.nodeid, &attr).unwrap();
    assert_eq!(
        std::fs::metadata(f.host("f")).unwrap().permissions().mode() & 0o7777,
        0o755
    );
}

#[test]
fn statx_reports_btime_and_mask() {
    let f = Fixture::new();
    std::fs::write(f.host("f"), b"abc").unwrap();
    let e = f.lookup(ROOT, "f").unwrap();
    let r =
        f.fs.statx(
            &ctx(),
            e.nodeid,
            None,
            0,
            libc::STATX_BASIC_STATS | libc::STATX_BTIME,
        )
        .unwrap();
    assert_eq!(r.statx.size.get(), 3);
    assert_ne!(r.statx.mask.get() & libc::STATX_BTIME, 0);
}

#[test]
fn readlink_on_regular_file_is_einval() {
    let f = Fixture::new();
    std::fs::write(f.host("f"), b"").unwrap();
    let e = f.lookup(ROOT, "f").unwrap();
    assert_eq!(
        f.fs.readlink(&ctx(), e.nodeid, &mut [0u8; 64]).unwrap_err(),
        Errno::EINVAL
    );
}

#[test]
fn access_checks_with_the_callers_identity() {
    let f = Fixture::new();
    std::fs::write(f.host("f"), b"").unwrap();
    std::fs::set_permissions(f.host("f"), std::fs::Permissions::from_mode(0o600)).unwrap();
    let e = f.lookup(ROOT, "f").unwrap();
    assert!(f.fs.access(&ctx(), e.nodeid, 0o6).is_ok());
    assert_eq!(
        f.fs.access(&ctx_as(1000, 1000), e.nodeid, 0o4).unwrap_err(),
        Errno::EACCES
    );
    assert!(f.fs.access(&ctx_as(1000, 1000), e.nodeid, 0).is_ok());
}

#[test]
fn mknod_fifo_socket_and_block_device() {
    needs_root!();
    let f = Fixture::new();
    let p =
        f.fs.mknod(&ctx(), &cctx(), ROOT, name("p"), libc::S_IFIFO | 0o644, 0)
            .unwrap();
    let s =
        f.fs.mknod(&ctx(), &cctx(), ROOT, name("s"), libc::S_IFSOCK | 0o644, 0)
            .unwrap();
    let b =
        f.fs.mknod(
            &ctx(),
            &cctx(),
            ROOT,
            name("b"),
            libc::S_IFBLK | 0o600,
            (8 << 8) | 1,
        )
        .unwrap();
    let r =
        f.fs.mknod(&ctx(), &cctx(), ROOT, name("r"), libc::S_IFREG | 0o600, 0)
            .unwrap();
    assert_eq!(p.attr.mode & mode::S_IFMT, mode::S_IFIFO);
    assert_eq!(s.attr.mode & mode::S_IFMT, mode::S_IFSOCK);
    assert_eq!(b.attr.rdev, (8 << 8) | 1);
    assert_eq!(r.attr.mode & mode::S_IFMT, mode::S_IFREG);
    assert_eq!(
        std::fs::metadata(f.host("b")).unwrap().rdev(),
        libc::makedev(8, 1)
    );
}

#[test]
fn mknod_directory_type_is_einval() {
    let f = Fixture::new();
    let r =
        f.fs.mknod(&ctx(), &cctx(), ROOT, name("d"), libc::S_IFDIR | 0o755, 0);
    assert_eq!(r.unwrap_err(), Errno::EINVAL);
}

#[test]
fn link_adds_a_name_and_a_reference() {
    let f = Fixture::new();
    std::fs::write(f.host("a"), b"x").unwrap();
    let a = f.lookup(ROOT, "a").unwrap();
    let b = f.fs.link(&ctx(), a.nodeid, ROOT, name("b")).unwrap();
    assert_eq!(a.nodeid, b.nodeid);
    assert_eq!(b.attr.nlink, 2);
    assert_eq!(f.fs.lookup_count(a.nodeid), Some(2));
}

#[test]
fn tmpfile_is_unnamed_and_writable() {
    let f = Fixture::new();
    let (e, o) =
        f.fs.tmpfile(
            &ctx(),
            &cctx(),
            ROOT,
            &TmpfileArgs::new(0o600, OpenArgs::new(libc::O_RDWR as u32)),
        )
        .unwrap();
    assert_eq!(e.attr.nlink, 0);
    assert_eq!(f.write(e.nodeid, o.fh, 0, b"tmp").unwrap(), 3);
    assert_eq!(f.list(ROOT).len(), 2); // only "." and ".."
    // LINK gives it a name, as linkat(AT_EMPTY_PATH) does in the guest.
    f.fs.link(&ctx(), e.nodeid, ROOT, name("named")).unwrap();
    assert_eq!(std::fs::read(f.host("named")).unwrap(), b"tmp");
}

#[test]
fn fallocate_punch_hole_and_lseek_data_hole() {
    let f = Fixture::new();
    let (e, fh) = f.create(ROOT, "f", 0o644, libc::O_RDWR as u32).unwrap();
    f.fs.fallocate(&ctx(), e.nodeid, fh, 0, 0, 1 << 20).unwrap();
    assert_eq!(std::fs::metadata(f.host("f")).unwrap().len(), 1 << 20);
    f.write(e.nodeid, fh, 0, &[1u8; 8192]).unwrap();
    let mode = (libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE) as u32;
    f.fs.fallocate(&ctx(), e.nodeid, fh, mode, 0, 4096).unwrap();
    let data =
        f.fs.lseek(&ctx(), e.nodeid, fh, 0, libc::SEEK_DATA as u32)
            .unwrap();
    assert_eq!(data, 4096);
    let hole =
        f.fs.lseek(&ctx(), e.nodeid, fh, 4096, libc::SEEK_HOLE as u32)
            .unwrap();
    assert_eq!(hole, 8192);
}

#[test]
fn lseek_bad_whence_is_einval() {
    let f = Fixture::new();
    let (e, fh) = f.create(ROOT, "f", 0o644, libc::O_RDWR as u32).unwrap();
    assert_eq!(
        f.fs.lseek(&ctx(), e.nodeid, fh, 0, 99).unwrap_err(),
        Errno::EINVAL
    );
}

#[test]
fn copy_file_range_copies_between_handles() {
    let f = Fixture::new();
    let (a, fa) = f.create(ROOT, "a", 0o644, libc::O_RDWR as u32).unwrap();
    let (b, fb) = f.create(ROOT, "b", 0o644, libc::O_RDWR as u32).unwrap();
    f.write(a.nodeid, fa, 0, b"hello world").unwrap();
    let n =
        f.fs.copy_file_range(
            &ctx(),
            &CopyFileRangeArgs::new(a.nodeid, fa, 6, b.nodeid, fb, 2, 5),
        )
        .unwrap();
    assert_eq!(n, 5);
    assert_eq!(std::fs::read(f.host("b")).unwrap(), b"\0\0world");
}

#[test]
fn fsync_fsyncdir_syncfs_flush_succeed() {
    let f = Fixture::new();
    let (e, fh) = f.create(ROOT, "a", 0o644, libc::O_RDWR as u32).unwrap();
    f.fs.fsync(&ctx(), e.nodeid, fh, false).unwrap();
    f.fs.fsync(&ctx(), e.nodeid, fh, true).unwrap();
    f.fs.flush(&ctx(), e.nodeid, fh, LockOwner(7)).unwrap();
    let dh = f.fs.opendir(&ctx(), ROOT, 0).unwrap().fh;
    f.fs.fsyncdir(&ctx(), ROOT, dh, true).unwrap();
    f.fs.syncfs(&ctx(), ROOT).unwrap();
}

#[test]
fn open_directory_for_writing_is_eisdir() {
    let f = Fixture::new();
    let d = f.mkdir(ROOT, "d").unwrap();
    assert_eq!(
        f.open(d.nodeid, libc::O_RDWR as u32).unwrap_err(),
        Errno::EISDIR
    );
}

#[test]
fn open_noatime_is_dropped() {
    let f = Fixture::new();
    std::fs::write(f.host("f"), b"x").unwrap();
    let e = f.lookup(ROOT, "f").unwrap();
    // O_NOATIME would fail with EPERM for a non-owner on the host; dropped, it cannot.
    let fh = f
        .open(e.nodeid, (libc::O_RDONLY | libc::O_NOATIME) as u32)
        .unwrap();
    assert_eq!(f.read(e.nodeid, fh, 0, 1).unwrap(), b"x");
}

#[test]
fn open_direct_dropped_unless_allowed() {
    // O_DIRECT would make this unaligned 3-byte write fail with EINVAL on the host.
    let f = Fixture::new();
    std::fs::write(f.host("f"), b"").unwrap();
    let e = f.lookup(ROOT, "f").unwrap();
    let fh = f
        .open(e.nodeid, (libc::O_RDWR | libc::O_DIRECT) as u32)
        .unwrap();
    assert_eq!(f.write(e.nodeid, fh, 1, b"abc").unwrap(), 3);
    let g = Fixture::with(|b| b.allow_direct_io(true));
    std::fs::write(g.host("f"), b"").unwrap();
    let e = g.lookup(ROOT, "f").unwrap();
    let fh = g
        .open(e.nodeid, (libc::O_RDWR | libc::O_DIRECT) as u32)
        .unwrap();
    assert_eq!(g.write(e.nodeid, fh, 1, b"abc").unwrap_err(), Errno::EINVAL);
}
