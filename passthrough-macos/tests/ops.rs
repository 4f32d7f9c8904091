//! The backend's operations on the Linux adapter (which behaves like a macOS host): what the
//! guest sees, and what lands on the host.
// The Linux adapter is the host here; on a Mac these would need `DarwinHost`.
#![cfg(target_os = "linux")]
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use fuse_abi::{Errno, InitFlags, RenameFlags, mode};
use fuse_server::{
    CopyFileRangeArgs, FileSystem, Handle, LockArgs, LockOwner, NodeId, ReleaseArgs, SetAttr,
    TimeOrNow, Timespec,
};
use passthrough_macos::{CasePolicy, Config};

const O_RDWR: u32 = 2;
const O_WRONLY: u32 = 1;
const O_EXCL: u32 = 0x80;

#[test]
fn create_write_read_and_the_host_file() {
    let fx = Fixture::new();
    let (e, fh) = fx.create(root(), "f", 0o644, O_RDWR).unwrap();
    assert_eq!(fx.write(e.nodeid, fh, 0, b"hello macOS").unwrap(), 11);
    assert_eq!(fx.read(e.nodeid, fh, 6, 100).unwrap(), b"macOS");
    fx.release(e.nodeid, fh);
    assert_eq!(std::fs::read(fx.host_path("f")).unwrap(), b"hello macOS");
    assert_eq!(fx.getattr(e.nodeid).unwrap().size, 11);
}

#[test]
fn ownership_and_mode_live_in_the_override_only() {
    let fx = Fixture::new();
    let (e, fh) = fx
        .create_as(&ctx_as(1000, 1001), root(), "f", 0o644, O_RDWR)
        .unwrap();
    fx.release(e.nodeid, fh);
    assert_eq!(e.attr.mode, mode::S_IFREG | 0o644);
    assert_eq!((e.attr.uid, e.attr.gid), (1000, 1001));
    // The host file: 0600, owned by whoever runs the backend; the guest's view in the xattr,
    // in libkrun's format.
    let meta = std::fs::symlink_metadata(fx.host_path("f")).unwrap();
    use std::os::unix::fs::MetadataExt;
    assert_eq!(meta.mode() & 0o7777, 0o600);
    assert_eq!(fx.host_override("f").unwrap(), "1000:1001:0100644");

    let attr = fx
        .setattr(
            e.nodeid,
            SetAttr {
                mode: Some(0o4750),
                ..SetAttr::default()
            },
        )
        .unwrap();
    assert_eq!(attr.mode, mode::S_IFREG | 0o4750);
    let attr = fx
        .setattr(
            e.nodeid,
            SetAttr {
                uid: Some(7),
                gid: Some(u32::MAX),
                ..SetAttr::default()
            },
        )
        .unwrap();
    // chown clears set-uid; a gid of -1 leaves the group.
    assert_eq!(
        (attr.uid, attr.gid, attr.mode),
        (7, 1001, mode::S_IFREG | 0o750)
    );
    assert_eq!(fx.host_override("f").unwrap(), "7:1001:0100750");
    let meta = std::fs::symlink_metadata(fx.host_path("f")).unwrap();
    assert_eq!(meta.mode() & 0o7777, 0o600);
    // A fresh lookup sees the same.
    let again = fx.lookup(root(), "f").unwrap();
    assert_eq!(
        (again.attr.uid, again.attr.mode),
        (7, mode::S_IFREG | 0o750)
    );
}

#[test]
fn umask_and_setgid_directories() {
    let fx = Fixture::new();
    let cctx = fuse_server::CreateContext {
        umask: 0o027,
        ..Default::default()
    };
    let d = fx
        .fs
        .mkdir(&ctx_as(5, 6), &cctx, root(), name("d"), 0o2777)
        .unwrap();
    assert_eq!(d.attr.mode, mode::S_IFDIR | 0o2750);
    let f = fx
        .fs
        .mknod(
            &ctx_as(8, 9),
            &cctx,
            d.nodeid,
            name("x"),
            mode::S_IFREG | 0o666,
            0,
        )
        .unwrap();
    // The new file inherits the directory's group.
    assert_eq!((f.attr.uid, f.attr.gid), (8, 6));
    assert_eq!(f.attr.mode, mode::S_IFREG | 0o640);
}

#[test]
fn special_files_are_host_regular_files_with_their_type_in_the_override() {
    let fx = Fixture::new();
    let rdev = (5 << 8) | 1; // Linux new_encode_dev(5, 1)
    let chr = fx
        .fs
        .mknod(
            &ctx(),
            &cctx(),
            root(),
            name("tty"),
            mode::S_IFCHR | 0o620,
            rdev,
        )
        .unwrap();
    assert_eq!(chr.attr.mode, mode::S_IFCHR | 0o620);
    assert_eq!(chr.attr.rdev, rdev);
    let fifo = fx
        .fs
        .mknod(
            &ctx(),
            &cctx(),
            root(),
            name("fifo"),
            mode::S_IFIFO | 0o644,
            0,
        )
        .unwrap();
    assert_eq!(fifo.attr.mode, mode::S_IFIFO | 0o644);
    let sock = fx
        .fs
        .mknod(
            &ctx(),
            &cctx(),
            root(),
            name("sock"),
            mode::S_IFSOCK | 0o755,
            0,
        )
        .unwrap();
    assert_eq!(sock.attr.mode & mode::S_IFMT, mode::S_IFSOCK);
    for n in ["tty", "fifo", "sock"] {
        let meta = std::fs::symlink_metadata(fx.host_path(n)).unwrap();
        assert!(meta.file_type().is_file(), "{n} is a host regular file");
    }
    // READDIR reports the guest's types, not the host's DT_REG.
    let fh = fx.fs.opendir(&ctx(), root(), 0).unwrap().fh;
    let mut sink = Sink::new(usize::MAX);
    fx.fs.readdir(&ctx(), root(), fh, 0, &mut sink).unwrap();
    let typ = |n: &str| sink.get(n).typ;
    assert_eq!(typ("tty"), mode::DT_CHR);
    assert_eq!(typ("fifo"), mode::DT_FIFO);
    assert_eq!(typ("sock"), mode::DT_SOCK);
    // Directories and symlinks are not nodes.
    assert_eq!(
        fx.fs
            .mknod(&ctx(), &cctx(), root(), name("d"), mode::S_IFDIR | 0o755, 0)
            .unwrap_err(),
        Errno::EINVAL
    );
}

#[test]
fn symlinks_are_real_and_never_followed() {
    let fx = Fixture::new();
    let target = format!("{}/secret", fx.outside().display());
    let l = fx
        .fs
        .symlink(&ctx_as(3, 4), &cctx(), root(), name("l"), &cstr(&target))
        .unwrap();
    assert_eq!(l.attr.mode, mode::S_IFLNK | 0o777);
    let mut buf = [0u8; 4096];
    let n = fx.fs.readlink(&ctx(), l.nodeid, &mut buf).unwrap();
    assert_eq!(&buf[..n], target.as_bytes());
    let before = snapshot(&fx.outside());
    assert_eq!(fx.open(l.nodeid, O_RDWR).unwrap_err(), Errno::ELOOP);
    assert!(
        fx.setattr(
            l.nodeid,
            SetAttr {
                size: Some(0),
                ..SetAttr::default()
            }
        )
        .is_err()
    );
    let _ = fx.setxattr(l.nodeid, "user.x", b"v", 0);
    assert_eq!(snapshot(&fx.outside()), before);
    if is_root() {
        // Owner of a symlink (lchown) is kept in its own override.
        assert_eq!((l.attr.uid, l.attr.gid), (3, 4));
        let attr = fx
            .setattr(
                l.nodeid,
                SetAttr {
                    uid: Some(9),
                    ..SetAttr::default()
                },
            )
            .unwrap();
        assert_eq!((attr.uid, attr.gid), (9, 4));
    }
}

#[test]
fn an_unlinked_open_file_stays_reachable() {
    let fx = Fixture::new();
    let (e, fh) = fx.create(root(), "f", 0o644, O_RDWR).unwrap();
    fx.write(e.nodeid, fh, 0, b"data").unwrap();
    fx.fs.unlink(&ctx(), root(), name("f")).unwrap();
    assert_eq!(fx.lookup(root(), "f").unwrap_err(), Errno::ENOENT);
    assert_eq!(fx.read(e.nodeid, fh, 0, 10).unwrap(), b"data");
    let attr = fx.getattr(e.nodeid).unwrap();
    assert_eq!((attr.nlink, attr.size), (0, 4));
    // chmod and a second open of the unlinked file work through the kept descriptor.
    let attr = fx
        .setattr(
            e.nodeid,
            SetAttr {
                mode: Some(0o600),
                ..SetAttr::default()
            },
        )
        .unwrap();
    assert_eq!(attr.mode, mode::S_IFREG | 0o600);
    let fh2 = fx.open(e.nodeid, 0).unwrap();
    assert_eq!(fx.read(e.nodeid, fh2, 0, 10).unwrap(), b"data");
    // It cannot get a new name (Linux says ENOENT too).
    assert_eq!(
        fx.fs
            .link(&ctx(), e.nodeid, root(), name("again"))
            .unwrap_err(),
        Errno::ENOENT
    );
    fx.release(e.nodeid, fh);
    fx.release(e.nodeid, fh2);
    fx.fs.forget(&ctx(), e.nodeid, 1);
    assert_eq!(fx.getattr(e.nodeid).unwrap_err(), Errno::ESTALE);
}

#[test]
fn a_file_renamed_over_stays_reachable() {
    let fx = Fixture::new();
    let (old, fh) = fx.create(root(), "status", 0o644, O_RDWR).unwrap();
    fx.write(old.nodeid, fh, 0, b"old").unwrap();
    let (new, fh_new) = fx.create(root(), "status-new", 0o644, O_RDWR).unwrap();
    fx.write(new.nodeid, fh_new, 0, b"new!").unwrap();
    fx.fs
        .rename(
            &ctx(),
            root(),
            name("status-new"),
            root(),
            name("status"),
            RenameFlags::empty(),
        )
        .unwrap();
    assert_eq!(fx.read(old.nodeid, fh, 0, 10).unwrap(), b"old");
    assert_eq!(fx.getattr(old.nodeid).unwrap().size, 3);
    assert_eq!(fx.lookup(root(), "status").unwrap().nodeid, new.nodeid);
    assert_eq!(std::fs::read(fx.host_path("status")).unwrap(), b"new!");
}

#[test]
fn rename_flags() {
    let fx = Fixture::new();
    for n in ["a", "b"] {
        let (e, fh) = fx.create(root(), n, 0o644, O_RDWR).unwrap();
        fx.write(e.nodeid, fh, 0, n.as_bytes()).unwrap();
        fx.release(e.nodeid, fh);
    }
    let rename = |from: &str, to: &str, flags| {
        fx.fs
            .rename(&ctx(), root(), name(from), root(), name(to), flags)
    };
    assert_eq!(
        rename("a", "b", RenameFlags::NOREPLACE).unwrap_err(),
        Errno::EEXIST
    );
    rename("a", "b", RenameFlags::EXCHANGE).unwrap();
    assert_eq!(std::fs::read(fx.host_path("a")).unwrap(), b"b");
    assert_eq!(std::fs::read(fx.host_path("b")).unwrap(), b"a");
    assert_eq!(
        rename("a", "b", RenameFlags::EXCHANGE | RenameFlags::NOREPLACE).unwrap_err(),
        Errno::EINVAL
    );
    // A whiteout: the old name becomes a character device 0:0 for the guest.
    rename("a", "c", RenameFlags::WHITEOUT).unwrap();
    let w = fx.lookup(root(), "a").unwrap();
    assert_eq!(w.attr.mode, mode::S_IFCHR | 0o600);
    assert_eq!(w.attr.rdev, 0);
    assert!(
        std::fs::symlink_metadata(fx.host_path("a"))
            .unwrap()
            .is_file()
    );
}

#[test]
fn readdir_offsets_are_stable_and_a_rewind_rereads() {
    let fx = Fixture::new();
    for i in 0..10 {
        fx.mkdir(root(), &format!("d{i}")).unwrap();
    }
    let fh = fx.fs.opendir(&ctx(), root(), 0).unwrap().fh;
    let mut seen = Vec::new();
    let mut offset = 0;
    loop {
        let mut sink = Sink::new(3);
        fx.fs
            .readdir(&ctx(), root(), fh, offset, &mut sink)
            .unwrap();
        if sink.entries.is_empty() {
            break;
        }
        for e in &sink.entries {
            assert_eq!(e.typ, mode::DT_DIR);
            seen.push(e.name.clone());
            offset = e.offset;
        }
        // Changes during the stream do not shift it.
        if seen.len() == 3 {
            fx.mkdir(root(), "late").unwrap();
        }
    }
    seen.sort();
    assert_eq!(seen, (0..10).map(|i| format!("d{i}")).collect::<Vec<_>>());
    // A rewind (offset 0) takes a new snapshot.
    let mut sink = Sink::new(usize::MAX);
    fx.fs.readdir(&ctx(), root(), fh, 0, &mut sink).unwrap();
    assert_eq!(sink.entries.len(), 11);
    // Offsets past the end are empty, not an error.
    let mut sink = Sink::new(usize::MAX);
    fx.fs
        .readdir(&ctx(), root(), fh, u64::MAX, &mut sink)
        .unwrap();
    assert!(sink.entries.is_empty());
    fx.fs.releasedir(&ctx(), root(), fh, 0).unwrap();
}

#[test]
fn xattrs_with_the_override_hidden() {
    let fx = Fixture::new();
    let (e, fh) = fx.create(root(), "f", 0o644, O_RDWR).unwrap();
    fx.release(e.nodeid, fh);
    fx.setxattr(e.nodeid, "user.a", b"1", 0).unwrap();
    fx.setxattr(e.nodeid, "trusted.overlay.opaque", b"y", 0)
        .unwrap();
    assert_eq!(fx.getxattr(e.nodeid, "user.a").unwrap(), b"1");
    assert_eq!(
        fx.setxattr(e.nodeid, "user.a", b"2", 1).unwrap_err(),
        Errno::EEXIST
    ); // XATTR_CREATE
    assert_eq!(
        fx.setxattr(e.nodeid, "user.b", b"2", 2).unwrap_err(),
        Errno::ENODATA
    ); // XATTR_REPLACE
    assert_eq!(
        fx.getxattr(e.nodeid, "user.none").unwrap_err(),
        Errno::ENODATA
    );
    let mut names = fx.listxattr(e.nodeid);
    names.sort();
    assert_eq!(names, ["trusted.overlay.opaque", "user.a"]);
    // The server's own attribute cannot be read, written or removed by the guest.
    for n in ["user.containers.override_stat", "user.virtiofs.rdev"] {
        assert_eq!(fx.getxattr(e.nodeid, n).unwrap_err(), Errno::EACCES);
        assert_eq!(
            fx.setxattr(e.nodeid, n, b"0:0:0", 0).unwrap_err(),
            Errno::EACCES
        );
        assert_eq!(
            fx.fs.removexattr(&ctx(), e.nodeid, &cstr(n)).unwrap_err(),
            Errno::EACCES
        );
    }
    assert_eq!(
        fx.getxattr(e.nodeid, "com.apple.quarantine").unwrap_err(),
        Errno::EOPNOTSUPP
    );
    // The size probe.
    let mut empty = [];
    assert_eq!(
        fx.fs
            .getxattr(&ctx(), e.nodeid, &cstr("user.a"), &mut empty)
            .unwrap(),
        fuse_server::XattrReply::Size(1)
    );
    let mut small = [0u8; 1];
    assert_eq!(
        fx.fs.listxattr(&ctx(), e.nodeid, &mut small).unwrap_err(),
        Errno::ERANGE
    );
    fx.fs
        .removexattr(&ctx(), e.nodeid, &cstr("user.a"))
        .unwrap();
    assert_eq!(fx.listxattr(e.nodeid), ["trusted.overlay.opaque"]);
    // Without xattr support the guest is told to stop asking.
    let fx = Fixture::with(|c| Config { xattr: false, ..c });
    assert_eq!(fx.getxattr(root(), "user.a").unwrap_err(), Errno::ENOSYS);
}

#[test]
fn host_errors_reach_the_guest_in_linux_numbering() {
    let fx = Fixture::new();
    let d = fx.mkdir(root(), "d").unwrap();
    fx.mkdir(d.nodeid, "sub").unwrap();
    // Darwin ENOTEMPTY is 66, Linux's 39.
    assert_eq!(
        fx.fs.rmdir(&ctx(), root(), name("d")).unwrap_err(),
        Errno::ENOTEMPTY
    );
    assert_eq!(fx.lookup(root(), "missing").unwrap_err(), Errno::ENOENT);
    assert_eq!(fx.mkdir(root(), "d").unwrap_err(), Errno::EEXIST);
    let (f, fh) = fx.create(root(), "f", 0o644, O_RDWR).unwrap();
    fx.release(f.nodeid, fh);
    assert_eq!(
        fx.create(root(), "f", 0o644, O_RDWR | O_EXCL).unwrap_err(),
        Errno::EEXIST
    );
    assert_eq!(fx.lookup(f.nodeid, "x").unwrap_err(), Errno::ENOTDIR);
    assert_eq!(
        fx.fs.opendir(&ctx(), f.nodeid, 0).unwrap_err(),
        Errno::ENOTDIR
    );
}

#[test]
fn hostile_names_and_nodes() {
    let fx = Fixture::new();
    let before = snapshot(&fx.outside());
    for n in [".", ".."] {
        assert_eq!(fx.lookup(root(), n).unwrap_err(), Errno::EINVAL);
        assert_eq!(fx.mkdir(root(), n).unwrap_err(), Errno::EINVAL);
    }
    assert_eq!(fx.getattr(NodeId(12345)).unwrap_err(), Errno::ESTALE);
    assert_eq!(
        fx.read(NodeId(1), Handle(999), 0, 10).unwrap_err(),
        Errno::EBADF
    );
    assert_eq!(
        fx.fs
            .link(&ctx(), root(), root(), name("rootlink"))
            .unwrap_err(),
        Errno::EPERM
    );
    assert_eq!(snapshot(&fx.outside()), before);
}

#[test]
fn times_and_truncate() {
    let fx = Fixture::new();
    let (e, fh) = fx.create(root(), "f", 0o644, O_RDWR).unwrap();
    fx.write(e.nodeid, fh, 0, b"0123456789").unwrap();
    fx.release(e.nodeid, fh);
    let t = Timespec {
        sec: 1_000_000_000,
        nsec: 5,
    };
    let attr = fx
        .setattr(
            e.nodeid,
            SetAttr {
                size: Some(4),
                atime: Some(TimeOrNow::Time(t)),
                mtime: Some(TimeOrNow::Time(t)),
                ..SetAttr::default()
            },
        )
        .unwrap();
    assert_eq!(attr.size, 4);
    assert_eq!((attr.atime, attr.mtime), (t, t));
    let attr = fx
        .setattr(
            e.nodeid,
            SetAttr {
                mtime: Some(TimeOrNow::Now),
                ..SetAttr::default()
            },
        )
        .unwrap();
    assert!(attr.mtime.sec > t.sec);
    assert_eq!(attr.atime, t);
    assert_eq!(std::fs::read(fx.host_path("f")).unwrap(), b"0123");
}

#[test]
fn hard_links_count_and_share_the_override() {
    let fx = Fixture::new();
    let (e, fh) = fx.create(root(), "f", 0o640, O_RDWR).unwrap();
    fx.release(e.nodeid, fh);
    let l = fx.fs.link(&ctx(), e.nodeid, root(), name("g")).unwrap();
    assert_eq!(l.nodeid, e.nodeid);
    assert_eq!(l.attr.nlink, 2);
    assert_eq!(l.attr.mode, mode::S_IFREG | 0o640);
}

#[test]
fn fallocate_seek_and_copy() {
    let fx = Fixture::new();
    let (e, fh) = fx.create(root(), "f", 0o644, O_RDWR).unwrap();
    // Mode 0 extends.
    fx.fs
        .fallocate(&ctx(), e.nodeid, fh, 0, 0, 1 << 20)
        .unwrap();
    assert_eq!(fx.getattr(e.nodeid).unwrap().size, 1 << 20);
    // KEEP_SIZE does not.
    fx.fs
        .fallocate(&ctx(), e.nodeid, fh, 1, 0, 2 << 20)
        .unwrap();
    assert_eq!(fx.getattr(e.nodeid).unwrap().size, 1 << 20);
    // Darwin cannot zero a range.
    assert_eq!(
        fx.fs
            .fallocate(&ctx(), e.nodeid, fh, 0x10, 0, 10)
            .unwrap_err(),
        Errno::EOPNOTSUPP
    );
    // A punched hole reads as zeros, edges included.
    fx.write(e.nodeid, fh, 0, &[b'x'; 20000]).unwrap();
    fx.fs
        .fallocate(&ctx(), e.nodeid, fh, 3, 100, 10000)
        .unwrap();
    let data = fx.read(e.nodeid, fh, 0, 20000).unwrap();
    assert!(data[..100].iter().all(|&b| b == b'x'));
    assert!(data[100..10100].iter().all(|&b| b == 0));
    assert!(data[10100..].iter().all(|&b| b == b'x'));
    // PUNCH_HOLE without KEEP_SIZE is Linux's EINVAL.
    assert_eq!(
        fx.fs.fallocate(&ctx(), e.nodeid, fh, 2, 0, 10).unwrap_err(),
        Errno::EINVAL
    );

    // SEEK_DATA (3) and SEEK_HOLE (4), Linux numbering, on a sparse file.
    let (s, sfh) = fx.create(root(), "sparse", 0o644, O_RDWR).unwrap();
    fx.write(s.nodeid, sfh, 1 << 20, b"end").unwrap();
    let data = fx.fs.lseek(&ctx(), s.nodeid, sfh, 0, 3).unwrap();
    let hole = fx.fs.lseek(&ctx(), s.nodeid, sfh, 0, 4).unwrap();
    assert!(data > 0 && data <= 1 << 20, "SEEK_DATA {data}");
    assert_eq!(hole, 0, "SEEK_HOLE");
    assert_eq!(
        fx.fs.lseek(&ctx(), s.nodeid, sfh, 0, 9).unwrap_err(),
        Errno::EINVAL
    );

    // COPY_FILE_RANGE.
    let (d, dfh) = fx.create(root(), "copy", 0o644, O_RDWR).unwrap();
    let n = fx
        .fs
        .copy_file_range(
            &ctx(),
            &CopyFileRangeArgs::new(s.nodeid, sfh, (1 << 20) - 2, d.nodeid, dfh, 1, 100),
        )
        .unwrap();
    assert_eq!(n, 5);
    assert_eq!(fx.read(d.nodeid, dfh, 0, 10).unwrap(), b"\0\0\0end");
    assert_eq!(
        fx.fs
            .copy_file_range(
                &ctx(),
                &CopyFileRangeArgs::new(s.nodeid, sfh, 0, d.nodeid, dfh, 0, 1).with_flags(1)
            )
            .unwrap_err(),
        Errno::EINVAL
    );
}

#[test]
fn posix_locks_conflict_between_owners_and_flush_drops_them() {
    let fx = Fixture::with(|c| Config {
        posix_locks: true,
        flock_locks: true,
        ..c
    });
    assert!(fx.fs.capabilities().flags.contains(InitFlags::POSIX_LOCKS));
    let (e, fh) = fx.create(root(), "f", 0o644, O_RDWR).unwrap();
    let fh2 = fx.open(e.nodeid, O_RDWR).unwrap();
    let write = fuse_server::Lock {
        start: 0,
        end: 99,
        typ: 1,
        pid: 10,
    };
    fx.fs
        .setlk(&ctx(), e.nodeid, &LockArgs::new(fh, LockOwner(1), write))
        .unwrap();
    // The same owner again: fine; another owner: conflict.
    fx.fs
        .setlk(&ctx(), e.nodeid, &LockArgs::new(fh2, LockOwner(1), write))
        .unwrap();
    assert_eq!(
        fx.fs
            .setlk(&ctx(), e.nodeid, &LockArgs::new(fh2, LockOwner(2), write))
            .unwrap_err(),
        Errno::EAGAIN
    );
    let got = fx
        .fs
        .getlk(&ctx(), e.nodeid, &LockArgs::new(fh2, LockOwner(2), write))
        .unwrap();
    assert_eq!((got.typ, got.start, got.end), (1, 0, 99));
    // A sleeping request tries once and answers EAGAIN ("ask again") rather than holding the
    // worker.
    assert_eq!(
        fx.fs
            .setlk(
                &ctx(),
                e.nodeid,
                &LockArgs::new(fh2, LockOwner(2), write).with_sleep(true)
            )
            .unwrap_err(),
        Errno::EAGAIN
    );
    fx.fs.flush(&ctx(), e.nodeid, fh, LockOwner(1)).unwrap();
    fx.fs
        .setlk(&ctx(), e.nodeid, &LockArgs::new(fh2, LockOwner(2), write))
        .unwrap();
    // flock locks belong to the open file.
    fx.fs
        .setlk(
            &ctx(),
            e.nodeid,
            &LockArgs::new(fh, LockOwner(0), write).with_flock(true),
        )
        .unwrap();
    assert_eq!(
        fx.fs
            .setlk(
                &ctx(),
                e.nodeid,
                &LockArgs::new(fh2, LockOwner(0), write).with_flock(true)
            )
            .unwrap_err(),
        Errno::EAGAIN
    );
    // Not declared, not served.
    let fx = Fixture::new();
    assert!(!fx.fs.capabilities().flags.contains(InitFlags::POSIX_LOCKS));
    let (e, fh) = fx.create(root(), "f", 0o644, O_RDWR).unwrap();
    assert_eq!(
        fx.fs
            .setlk(&ctx(), e.nodeid, &LockArgs::new(fh, LockOwner(1), write))
            .unwrap_err(),
        Errno::ENOSYS
    );
}

/// A guest OFD lock's owner is its open file, which no FLUSH names: RELEASE of the handle it
/// was taken through ends it (issue 14, generic/478).
#[test]
fn release_drops_the_lock_descriptions_used_through_the_handle() {
    let fx = Fixture::with(|c| Config {
        posix_locks: true,
        ..c
    });
    let (e, fh) = fx.create(root(), "f", 0o644, O_RDWR).unwrap();
    let fh2 = fx.open(e.nodeid, O_RDWR).unwrap();
    let write = fuse_server::Lock {
        start: 0,
        end: u64::MAX >> 1,
        typ: 1,
        pid: 10,
    };
    fx.fs
        .setlk(
            &ctx(),
            e.nodeid,
            &LockArgs::new(fh, LockOwner(0x1111), write),
        )
        .unwrap();
    fx.fs
        .flush(&ctx(), e.nodeid, fh, LockOwner(0x2222))
        .unwrap();
    assert_eq!(
        fx.fs
            .setlk(
                &ctx(),
                e.nodeid,
                &LockArgs::new(fh2, LockOwner(0x3333), write)
            )
            .unwrap_err(),
        Errno::EAGAIN
    );
    fx.fs
        .release(&ctx(), e.nodeid, &ReleaseArgs::new(fh))
        .unwrap();
    fx.fs
        .setlk(
            &ctx(),
            e.nodeid,
            &LockArgs::new(fh2, LockOwner(0x3333), write),
        )
        .unwrap();
    assert_eq!(fx.fs.lock_fds_in_use(), 1);
    fx.fs
        .release(&ctx(), e.nodeid, &ReleaseArgs::new(fh2))
        .unwrap();
    assert_eq!(fx.fs.lock_fds_in_use(), 0);
}

#[test]
fn statfs_and_access() {
    let fx = Fixture::new();
    let st = fx.fs.statfs(&ctx(), root()).unwrap();
    assert!(st.blocks > 0 && st.bsize > 0);
    assert_eq!(st.namelen, 255);
    let (e, fh) = fx
        .create_as(&ctx_as(1000, 1000), root(), "f", 0o640, O_WRONLY)
        .unwrap();
    fx.release(e.nodeid, fh);
    fx.fs.access(&ctx_as(1000, 1000), e.nodeid, 6).unwrap();
    fx.fs.access(&ctx_as(2000, 1000), e.nodeid, 4).unwrap();
    assert_eq!(
        fx.fs.access(&ctx_as(2000, 1000), e.nodeid, 2).unwrap_err(),
        Errno::EACCES
    );
    assert_eq!(
        fx.fs.access(&ctx_as(2000, 2000), e.nodeid, 4).unwrap_err(),
        Errno::EACCES
    );
}

#[test]
fn writeback_only_when_configured_and_write_only_opens_become_readable() {
    let fx = Fixture::new();
    assert!(
        !fx.fs
            .capabilities()
            .flags
            .contains(InitFlags::WRITEBACK_CACHE)
    );
    let fx = Fixture::with(|c| Config {
        writeback: true,
        ..c
    });
    let flags = fx.fs.capabilities().flags;
    assert!(flags.contains(InitFlags::WRITEBACK_CACHE));
    for never in [
        InitFlags::POSIX_ACL,
        InitFlags::ALLOW_IDMAP,
        InitFlags::EXPORT_SUPPORT,
    ] {
        assert!(!flags.contains(never));
    }
    let (e, fh) = fx.create(root(), "f", 0o644, O_WRONLY).unwrap();
    fx.write(e.nodeid, fh, 0, b"abc").unwrap();
    // The guest's page cache may read a write-only file for a partial page.
    assert_eq!(fx.read(e.nodeid, fh, 0, 3).unwrap(), b"abc");
}

#[test]
fn a_new_session_forgets_the_old_one() {
    let fx = Fixture::new();
    let (e, fh) = fx.create(root(), "f", 0o644, O_RDWR).unwrap();
    fx.negotiate(fx.fs.capabilities().flags);
    assert_eq!(fx.getattr(e.nodeid).unwrap_err(), Errno::ESTALE);
    assert_eq!(fx.read(e.nodeid, fh, 0, 1).unwrap_err(), Errno::EBADF);
    assert!(fx.lookup(root(), "f").is_ok());
}

#[test]
fn case_policy_defaults_to_exact() {
    assert_eq!(Config::new("/").case, CasePolicy::Exact);
}
