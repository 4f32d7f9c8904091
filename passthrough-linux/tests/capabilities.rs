//! Every INIT flag the backend declares is honoured: each flag has a check here, and a flag
//! declared without one fails the test. Flags not configured are not declared.
#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};

use common::*;
use fuse_abi::{INVALID_UIDGID, InitFlags, SetxattrFlags, WriteFlags};
use fuse_server::{
    CreateContext, FileSystem, Lock, LockArgs, LockOwner, OpenArgs, SecurityContext, SetxattrArgs,
    WriteArgs,
};

fn full() -> Fixture {
    Fixture::with(|b| {
        b.writeback(true)
            .posix_acl(true)
            .killpriv_v2(true)
            .security_label(true)
            .flock_locks(true)
            .announce_submounts(true)
            .allow_mmap(true)
    })
}

fn check(flag: InitFlags, f: &Fixture) {
    let name = format!("{flag:?}");
    match flag {
        InitFlags::ASYNC_READ | InitFlags::ASYNC_DIO => concurrent_io(f),
        InitFlags::PARALLEL_DIROPS => parallel_lookups(f),
        InitFlags::BIG_WRITES | InitFlags::MAX_PAGES => big_write(f),
        InitFlags::AUTO_INVAL_DATA => host_changes_visible(f),
        InitFlags::ATOMIC_O_TRUNC => open_trunc(f),
        InitFlags::DO_READDIRPLUS | InitFlags::READDIRPLUS_AUTO => readdirplus(f),
        InitFlags::POSIX_LOCKS => posix_locks(f),
        InitFlags::FLOCK_LOCKS => flock_locks(f),
        InitFlags::DONT_MASK => dont_mask(f),
        InitFlags::CREATE_SUPP_GROUP => supp_group(f),
        InitFlags::SETXATTR_EXT | InitFlags::POSIX_ACL => acl(f),
        InitFlags::ALLOW_IDMAP => idmap(f),
        InitFlags::WRITEBACK_CACHE => writeback(f),
        InitFlags::HANDLE_KILLPRIV_V2 => killpriv(f),
        InitFlags::SECURITY_CTX => security_ctx(f),
        InitFlags::SUBMOUNTS => submounts(f),
        InitFlags::CACHE_SYMLINKS => symlinks(f),
        InitFlags::DIRECT_IO_ALLOW_MMAP => page_io(f),
        _ => panic!("{name} is declared but has no check in tests/capabilities.rs"),
    }
}

#[test]
fn every_declared_flag_is_honoured() {
    let f = full();
    let declared = f.fs.declared_flags();
    assert!(f.fs.capabilities().handles_invalid_uidgid);
    for flag in declared.iter() {
        let f = full();
        check(flag, &f);
    }
}

#[test]
fn optional_flags_follow_the_configuration() {
    let plain = Fixture::with(|b| b.cache(passthrough_linux::CachePolicy::Never))
        .fs
        .declared_flags();
    for flag in [
        InitFlags::WRITEBACK_CACHE,
        InitFlags::POSIX_ACL,
        InitFlags::HANDLE_KILLPRIV_V2,
        InitFlags::SECURITY_CTX,
        InitFlags::SUBMOUNTS,
        InitFlags::CACHE_SYMLINKS,
        InitFlags::DIRECT_IO_ALLOW_MMAP,
    ] {
        assert!(
            !plain.contains(flag),
            "{flag:?} declared without being configured"
        );
    }
    // Never declared: the backend has no ioctl, no DAX, no passthrough, no notifications.
    for flag in [
        InitFlags::HAS_IOCTL_DIR,
        InitFlags::EXPORT_SUPPORT,
        InitFlags::NO_OPEN_SUPPORT,
        InitFlags::NO_OPENDIR_SUPPORT,
        InitFlags::HAS_INODE_DAX,
        InitFlags::MAP_ALIGNMENT,
        InitFlags::PASSTHROUGH,
        InitFlags::HANDLE_KILLPRIV,
    ] {
        assert!(
            !full().fs.declared_flags().contains(flag),
            "{flag:?} must not be declared"
        );
    }
}

#[test]
fn readonly_declares_no_writeback_or_killpriv() {
    let f = Fixture::with(|b| b.readonly(true).killpriv_v2(true));
    assert!(
        !f.fs
            .declared_flags()
            .contains(InitFlags::HANDLE_KILLPRIV_V2)
    );
    assert!(!f.fs.declared_flags().contains(InitFlags::WRITEBACK_CACHE));
}

#[test]
fn flock_locks_are_remote_only_when_configured() {
    // Default: the guest kernel keeps flock locks (they show in its /proc/locks, fstests
    // generic/504), and a flock request that arrives anyway is ENOSYS, never a host lock.
    let f = Fixture::new();
    assert!(!f.fs.declared_flags().contains(InitFlags::FLOCK_LOCKS));
    assert!(f.fs.declared_flags().contains(InitFlags::POSIX_LOCKS));
    let (e, fh) = f.create(ROOT, "f", 0o644, libc::O_RDWR as u32).unwrap();
    let lock = Lock {
        start: 0,
        end: u64::MAX,
        typ: 1,
        pid: 1,
    };
    let args = LockArgs::new(fh, LockOwner(1), lock).with_flock(true);
    assert_eq!(
        f.fs.setlk(&ctx(), e.nodeid, &args),
        Err(fuse_abi::Errno::ENOSYS)
    );
    let f = Fixture::with(|b| b.flock_locks(true));
    assert!(f.fs.declared_flags().contains(InitFlags::FLOCK_LOCKS));
}

fn concurrent_io(f: &Fixture) {
    let (e, fh) = f.create(ROOT, "f", 0o644, libc::O_RDWR as u32).unwrap();
    std::thread::scope(|s| {
        for i in 0..4u8 {
            s.spawn(move || {
                let data = [i; 4096];
                assert_eq!(
                    f.write(e.nodeid, fh, u64::from(i) * 4096, &data).unwrap(),
                    4096
                );
                assert_eq!(
                    f.read(e.nodeid, fh, u64::from(i) * 4096, 4096).unwrap(),
                    data
                );
            });
        }
    });
}

fn parallel_lookups(f: &Fixture) {
    for i in 0..8 {
        std::fs::write(f.host(&format!("f{i}")), b"").unwrap();
    }
    std::thread::scope(|s| {
        for i in 0..8 {
            s.spawn(move || f.lookup(ROOT, &format!("f{i}")).unwrap());
        }
    });
    assert_eq!(f.fs.inode_count(), 9);
}

fn big_write(f: &Fixture) {
    let caps = f.fs.capabilities();
    assert!(caps.max_write <= u32::from(caps.max_pages) * 4096);
    let (e, fh) = f.create(ROOT, "big", 0o644, libc::O_RDWR as u32).unwrap();
    let data = vec![7u8; caps.max_write as usize];
    assert_eq!(f.write(e.nodeid, fh, 0, &data).unwrap(), data.len());
}

/// A shared mapping of a direct-I/O file is served by page-sized READs and WRITEs at page
/// offsets: nothing else is asked of the backend.
fn page_io(f: &Fixture) {
    let (e, fh) = f
        .create(ROOT, "mapped", 0o644, libc::O_RDWR as u32)
        .unwrap();
    let page = vec![3u8; 4096];
    assert_eq!(f.write(e.nodeid, fh, 8192, &page).unwrap(), page.len());
    let host = std::fs::read(f.host("mapped")).unwrap();
    assert_eq!(host.len(), 12288);
    assert_eq!(&host[8192..], &page[..]);
}

fn host_changes_visible(f: &Fixture) {
    std::fs::write(f.host("f"), b"a").unwrap();
    let e = f.lookup(ROOT, "f").unwrap();
    std::fs::write(f.host("f"), b"abcdef").unwrap();
    assert_eq!(f.fs.getattr(&ctx(), e.nodeid, None).unwrap().attr.size, 6);
}

fn open_trunc(f: &Fixture) {
    std::fs::write(f.host("t"), b"abc").unwrap();
    let e = f.lookup(ROOT, "t").unwrap();
    f.open(e.nodeid, (libc::O_RDWR | libc::O_TRUNC) as u32)
        .unwrap();
    assert_eq!(std::fs::metadata(f.host("t")).unwrap().len(), 0);
}

fn readdirplus(f: &Fixture) {
    std::fs::write(f.host("x"), b"12").unwrap();
    let fh = f.fs.opendir(&ctx(), ROOT, 0).unwrap().fh;
    let mut sink = Sink::new(usize::MAX);
    f.fs.readdirplus(&ctx(), ROOT, fh, 0, &mut sink).unwrap();
    let x = sink.get("x");
    assert_eq!(x.entry.attr.size, 2);
}

fn posix_locks(f: &Fixture) {
    let (e, a) = f.create(ROOT, "l", 0o644, libc::O_RDWR as u32).unwrap();
    let b = f.open(e.nodeid, libc::O_RDWR as u32).unwrap();
    let wr = Lock {
        start: 0,
        end: 10,
        typ: 1,
        pid: 1,
    };
    f.fs.setlk(&ctx(), e.nodeid, &LockArgs::new(a, LockOwner(1), wr))
        .unwrap();
    assert!(
        f.fs.setlk(&ctx(), e.nodeid, &LockArgs::new(b, LockOwner(2), wr))
            .is_err()
    );
}

fn flock_locks(f: &Fixture) {
    let (e, a) = f.create(ROOT, "l", 0o644, libc::O_RDWR as u32).unwrap();
    let b = f.open(e.nodeid, libc::O_RDWR as u32).unwrap();
    let ex = Lock {
        start: 0,
        end: i64::MAX as u64,
        typ: 1,
        pid: 1,
    };
    f.fs.setlk(
        &ctx(),
        e.nodeid,
        &LockArgs::new(a, LockOwner(1), ex).with_flock(true),
    )
    .unwrap();
    assert!(
        f.fs.setlk(
            &ctx(),
            e.nodeid,
            &LockArgs::new(b, LockOwner(1), ex).with_flock(true)
        )
        .is_err()
    );
}

fn dont_mask(f: &Fixture) {
    let cc = CreateContext {
        umask: 0o077,
        ..Default::default()
    };
    let e = f.fs.mkdir(&ctx(), &cc, ROOT, name("m"), 0o777).unwrap();
    assert_eq!(e.attr.mode & 0o777, 0o700);
}

fn supp_group(f: &Fixture) {
    needs_root!();
    f.mkdir(ROOT, "g").unwrap();
    std::os::unix::fs::chown(f.host("g"), Some(0), Some(2000)).unwrap();
    std::fs::set_permissions(f.host("g"), std::fs::Permissions::from_mode(0o770)).unwrap();
    let g = f.lookup(ROOT, "g").unwrap().nodeid;
    let cc = CreateContext {
        supp_gid: Some(2000),
        ..Default::default()
    };
    f.fs.mkdir(&ctx_as(1000, 1000), &cc, g, name("b"), 0o755)
        .unwrap();
}

fn acl(f: &Fixture) {
    let (e, _) = f.create(ROOT, "a", 0o644, libc::O_RDWR as u32).unwrap();
    std::fs::set_permissions(f.host("a"), std::fs::Permissions::from_mode(0o2775)).unwrap();
    let mut v = 2u32.to_le_bytes().to_vec();
    for (tag, perm) in [(0x01u16, 7u16), (0x04, 5), (0x20, 5)] {
        v.extend_from_slice(&tag.to_le_bytes());
        v.extend_from_slice(&perm.to_le_bytes());
        v.extend_from_slice(&u32::MAX.to_le_bytes());
    }
    let name = c"system.posix_acl_access";
    f.fs.setxattr(
        &ctx(),
        e.nodeid,
        &SetxattrArgs::new(name, &v).with_setxattr_flags(SetxattrFlags::ACL_KILL_SGID),
    )
    .unwrap();
    assert_eq!(
        std::fs::metadata(f.host("a")).unwrap().mode() & 0o7777,
        0o755
    );
}

fn idmap(f: &Fixture) {
    std::fs::write(f.host("i"), b"").unwrap();
    let idm = ctx_as(INVALID_UIDGID, INVALID_UIDGID);
    let e = f.fs.lookup(&idm, ROOT, name("i")).unwrap();
    f.fs.getattr(&idm, e.nodeid, None).unwrap();
    f.fs.open(&idm, e.nodeid, &OpenArgs::new(libc::O_RDONLY as u32))
        .unwrap();
    let r =
        f.fs.mkdir(&idm, &CreateContext::default(), ROOT, name("n"), 0o755);
    assert!(r.is_err() && !f.host("n").exists());
}

fn writeback(f: &Fixture) {
    std::fs::write(f.host("w"), b"abc").unwrap();
    let e = f.lookup(ROOT, "w").unwrap();
    // Write-only opens can be read (the kernel fills partial pages); O_APPEND is the kernel's.
    let fh = f
        .open(e.nodeid, (libc::O_WRONLY | libc::O_APPEND) as u32)
        .unwrap();
    assert_eq!(f.read(e.nodeid, fh, 0, 3).unwrap(), b"abc");
    f.write(e.nodeid, fh, 1, b"X").unwrap();
    assert_eq!(std::fs::read(f.host("w")).unwrap(), b"aXc");
}

fn killpriv(f: &Fixture) {
    let (e, fh) = f.create(ROOT, "k", 0o755, libc::O_RDWR as u32).unwrap();
    std::fs::set_permissions(f.host("k"), std::fs::Permissions::from_mode(0o4755)).unwrap();
    let mut r = fuse_server::mem::MemReader::new(b"x");
    f.fs.write(
        &ctx(),
        e.nodeid,
        &WriteArgs::new(fh, 0, 1).with_write_flags(WriteFlags::KILL_SUIDGID),
        &mut r,
    )
    .unwrap();
    assert_eq!(
        std::fs::metadata(f.host("k")).unwrap().mode() & 0o7777,
        0o755
    );
}

fn security_ctx(f: &Fixture) {
    needs_root!();
    let cc = CreateContext {
        security_ctx: Some(SecurityContext {
            name: b"security.vtest",
            value: b"label",
        }),
        ..Default::default()
    };
    let e = f.fs.mkdir(&ctx(), &cc, ROOT, name("s"), 0o755).unwrap();
    let mut buf = [0u8; 16];
    let r =
        f.fs.getxattr(&ctx(), e.nodeid, c"security.vtest", &mut buf)
            .unwrap();
    assert_eq!(r, fuse_server::XattrReply::Data(5));
    assert_eq!(&buf[..5], b"label");
}

fn submounts(f: &Fixture) {
    needs_root!();
    std::fs::create_dir(f.host("mnt")).unwrap();
    let st = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "none"])
        .arg(f.host("mnt"))
        .status();
    if !st.map(|s| s.success()).unwrap_or(false) {
        eprintln!("cannot mount tmpfs here: SUBMOUNTS check skipped");
        return;
    }
    let e = f.lookup(ROOT, "mnt");
    let _ = std::process::Command::new("umount")
        .arg("-l")
        .arg(f.host("mnt"))
        .status();
    assert!(
        e.unwrap()
            .attr
            .flags
            .contains(fuse_abi::AttrFlags::SUBMOUNT)
    );
    let plain = f.mkdir(ROOT, "plain").unwrap();
    assert!(!plain.attr.flags.contains(fuse_abi::AttrFlags::SUBMOUNT));
}

fn symlinks(f: &Fixture) {
    let e =
        f.fs.symlink(
            &ctx(),
            &CreateContext::default(),
            ROOT,
            name("l"),
            c"target",
        )
        .unwrap();
    let mut buf = [0u8; 64];
    let n = f.fs.readlink(&ctx(), e.nodeid, &mut buf).unwrap();
    assert_eq!(&buf[..n], b"target");
}
