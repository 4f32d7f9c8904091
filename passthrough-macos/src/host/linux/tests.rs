//! [`LinuxHost`] on temp directories: Darwin numbers come out, identities resolve only while
//! named, symlinks are never followed, xattrs look like macOS's.

use std::fs;
use std::os::fd::AsFd;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::PathBuf;

use super::*;
use fuse_abi::mode;

/// Darwin `O_DIRECTORY`, to open a directory for `open_dir`.
const O_DIR: i32 = darwin_abi::O_RDONLY | darwin_abi::O_DIRECTORY;

/// A share `tmp/share` served by a fresh adapter, next to `tmp/outside`.
struct Fx {
    tmp: tempfile::TempDir,
    host: LinuxHost,
    root: HostId,
}

impl Fx {
    fn new() -> Fx {
        let tmp = tempfile::tempdir().unwrap();
        fs::create_dir(tmp.path().join("share")).unwrap();
        fs::create_dir(tmp.path().join("outside")).unwrap();
        let host = LinuxHost::new();
        let st = host.root(&tmp.path().join("share")).unwrap();
        Fx {
            root: HostId::of(&st),
            tmp,
            host,
        }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.tmp.path().join("share").join(rel)
    }

    fn outside(&self, rel: &str) -> PathBuf {
        self.tmp.path().join("outside").join(rel)
    }

    fn child<'a>(&self, name: &'a str) -> Node<'a> {
        Node::Child(self.root, name.as_bytes())
    }

    /// `lstat` of `name` in the share's root (registers it).
    fn id(&self, name: &str) -> HostId {
        HostId::of(&self.host.lstat(self.child(name)).unwrap())
    }

    fn write(&self, name: &str, data: &[u8]) {
        fs::write(self.path(name), data).unwrap();
    }
}

/// Whether the tests run as root (`trusted.` attributes need `CAP_SYS_ADMIN`).
fn is_root() -> bool {
    fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// The raw Linux attribute `name` of the object at `path` (following a symlink: only used on
/// regular files), or `None`.
fn host_xattr(path: &std::path::Path, name: &CStr) -> Option<Vec<u8>> {
    let file = fs::File::open(path).ok()?;
    let mut buf = vec![0u8; 256];
    let len = sys::fgetxattr(file.as_fd(), name, &mut buf).ok()?;
    buf.truncate(len);
    Some(buf)
}

// --- Darwin numbers --------------------------------------------------------------------------

#[test]
fn lstat_missing_name_is_darwin_enoent() {
    let fx = Fx::new();
    let err = fx.host.lstat(fx.child("missing")).unwrap_err();
    assert_eq!(err.raw(), 2);
}

#[test]
fn names_past_name_max_are_enametoolong() {
    let fx = Fx::new();
    let name = [b'n'; 255];
    fx.write(std::str::from_utf8(&name).unwrap(), b"");
    assert!(fx.host.lstat(Node::Child(fx.root, &name)).is_ok());
    assert_eq!(
        fx.host.lstat(Node::Child(fx.root, &[b'n'; 256])),
        Err(DarwinErrno::ENAMETOOLONG)
    );
}

#[test]
fn rmdir_non_empty_directory_is_darwin_enotempty() {
    let fx = Fx::new();
    fs::create_dir(fx.path("d")).unwrap();
    fx.write("d/f", b"x");
    let err = fx.host.rmdir(fx.root, b"d").unwrap_err();
    // Darwin ENOTEMPTY is 66 (Linux: 39).
    assert_eq!(err.raw(), 66);
    assert_eq!(err.to_linux().raw(), 39);
}

#[test]
fn open_symlink_is_darwin_eloop() {
    let fx = Fx::new();
    fx.write("target", b"data");
    symlink("target", fx.path("link")).unwrap();
    let id = fx.id("link");
    for flags in [darwin_abi::O_RDONLY, darwin_abi::O_RDWR, O_DIR] {
        // Darwin ELOOP is 62 (Linux: 40).
        let err = fx.host.open(fx.child("link"), flags, 0).unwrap_err();
        assert_eq!(err.raw(), 62, "Child, flags {flags:#x}");
        let err = fx.host.open(Node::Id(id), flags, 0).unwrap_err();
        assert_eq!(err.raw(), 62, "Id, flags {flags:#x}");
    }
}

#[test]
fn unlink_of_directory_is_eperm_as_on_macos() {
    let fx = Fx::new();
    fs::create_dir(fx.path("d")).unwrap();
    assert_eq!(fx.host.unlink(fx.root, b"d"), Err(DarwinErrno::EPERM));
}

#[test]
fn names_that_are_not_one_component_are_einval() {
    let fx = Fx::new();
    for name in [&b""[..], b".", b"..", b"a/b", b"a\0b"] {
        assert_eq!(
            fx.host.lstat(Node::Child(fx.root, name)).unwrap_err(),
            DarwinErrno::EINVAL,
            "{name:?}"
        );
        assert_eq!(
            fx.host.mkdir(fx.root, name, 0o700).unwrap_err(),
            DarwinErrno::EINVAL
        );
    }
}

#[test]
fn open_of_descriptor_is_ebadf_and_unknown_flags_are_einval() {
    let fx = Fx::new();
    fx.write("f", b"");
    let fd = fx
        .host
        .open(fx.child("f"), darwin_abi::O_RDONLY, 0)
        .unwrap();
    assert_eq!(
        fx.host
            .open(Node::Fd(fd.as_fd()), darwin_abi::O_RDONLY, 0)
            .unwrap_err(),
        DarwinErrno::EBADF
    );
    // O_SYMLINK would be Linux's O_PATH: refused, never passed through.
    assert_eq!(
        fx.host
            .open(fx.child("f"), darwin_abi::O_SYMLINK, 0)
            .unwrap_err(),
        DarwinErrno::EINVAL
    );
}

#[test]
fn io_errno_translates_linux_numbers() {
    let host = LinuxHost::new();
    let err = io::Error::from_raw_os_error(libc::ENOTEMPTY);
    assert_eq!(host.io_errno(&err), DarwinErrno::ENOTEMPTY);
    let err = io::Error::other("no OS error");
    assert_eq!(host.io_errno(&err), DarwinErrno::EIO);
}

// --- Roots and identities --------------------------------------------------------------------

#[test]
fn root_of_symlink_or_file_is_enotdir() {
    let fx = Fx::new();
    symlink(fx.tmp.path().join("share"), fx.outside("link")).unwrap();
    fs::write(fx.outside("file"), b"").unwrap();
    assert_eq!(
        fx.host.root(&fx.outside("link")).unwrap_err(),
        DarwinErrno::ENOTDIR
    );
    assert_eq!(
        fx.host.root(&fx.outside("file")).unwrap_err(),
        DarwinErrno::ENOTDIR
    );
    assert_eq!(
        fx.host.root(&fx.outside("missing")).unwrap_err(),
        DarwinErrno::ENOENT
    );
}

#[test]
fn identity_matches_host_inode_and_descriptor_stat() {
    let fx = Fx::new();
    fx.write("f", b"abc");
    let st = fx.host.lstat(fx.child("f")).unwrap();
    let meta = fs::symlink_metadata(fx.path("f")).unwrap();
    assert_eq!(st.ino, meta.ino());
    assert_eq!(st.size, 3);
    assert_eq!(u32::from(st.mode), meta.mode());
    assert_eq!(st.nlink, 1);
    let fd = fx
        .host
        .open(fx.child("f"), darwin_abi::O_RDONLY, 0)
        .unwrap();
    let by_fd = fx.host.lstat(Node::Fd(fd.as_fd())).unwrap();
    assert_eq!(HostId::of(&by_fd), HostId::of(&st));
    assert_eq!(fx.host.lstat(Node::Id(HostId::of(&st))).unwrap(), st);
}

#[test]
fn identity_stops_resolving_after_last_unlink_but_open_fd_keeps_working() {
    let fx = Fx::new();
    fx.write("f", b"hello");
    let id = fx.id("f");
    let fd = fx.host.open(Node::Id(id), darwin_abi::O_RDWR, 0).unwrap();
    // A second name keeps the identity reachable.
    fs::hard_link(fx.path("f"), fx.path("g")).unwrap();
    fx.host.unlink(fx.root, b"f").unwrap();
    assert_eq!(fx.host.lstat(Node::Id(id)).unwrap().nlink, 1);
    // The last name gone: volfs cannot reach it any more.
    fx.host.unlink(fx.root, b"g").unwrap();
    assert_eq!(fx.host.lstat(Node::Id(id)), Err(DarwinErrno::ENOENT));
    assert_eq!(
        fx.host
            .open(Node::Id(id), darwin_abi::O_RDONLY, 0)
            .unwrap_err(),
        DarwinErrno::ENOENT
    );
    assert_eq!(
        fx.host.getxattr(Node::Id(id), c"x", &mut [], 0),
        Err(DarwinErrno::ENOENT)
    );
    // The descriptor opened before still works.
    assert_eq!(fx.host.pwrite(fd.as_fd(), b"J", 0), Ok(1));
    let mut buf = [0u8; 5];
    assert_eq!(fx.host.pread(fd.as_fd(), &mut buf, 0), Ok(5));
    assert_eq!(&buf, b"Jello");
    let st = fx.host.lstat(Node::Fd(fd.as_fd())).unwrap();
    assert_eq!((st.nlink, HostId::of(&st)), (0, id));
}

#[test]
fn forget_drops_identity_but_never_root() {
    let fx = Fx::new();
    fs::create_dir(fx.path("d")).unwrap();
    let id = fx.id("d");
    fx.host.forget(id);
    assert_eq!(fx.host.lstat(Node::Id(id)), Err(DarwinErrno::ENOENT));
    // A new lookup registers it again.
    assert_eq!(fx.id("d"), id);
    assert!(fx.host.lstat(Node::Id(id)).is_ok());
    fx.host.forget(fx.root);
    assert!(fx.host.lstat(Node::Id(fx.root)).unwrap().is_dir());
    assert!(fx.host.lstat(fx.child("d")).is_ok());
}

#[test]
fn unknown_identity_is_enoent() {
    let fx = Fx::new();
    let made_up = HostId {
        dev: fx.root.dev,
        ino: 987_654_321,
    };
    assert_eq!(fx.host.lstat(Node::Id(made_up)), Err(DarwinErrno::ENOENT));
    assert_eq!(
        fx.host.mkdir(made_up, b"x", 0o700),
        Err(DarwinErrno::ENOENT)
    );
}

#[test]
fn identity_survives_rename_and_reaches_moved_directory() {
    let fx = Fx::new();
    fs::create_dir(fx.path("a")).unwrap();
    fs::create_dir(fx.path("b")).unwrap();
    let a = fx.id("a");
    let b = fx.id("b");
    fx.host.mkdir(a, b"sub", 0o700).unwrap();
    fx.host.rename(fx.root, b"a", b, b"moved", 0).unwrap();
    fx.host.mkdir(a, b"sub2", 0o700).unwrap();
    assert!(fx.path("b/moved/sub2").is_dir());
}

// --- Symlinks are never followed ------------------------------------------------------------

#[test]
fn symlink_to_etc_passwd_is_never_followed() {
    let fx = Fx::new();
    let passwd = fs::metadata("/etc/passwd").unwrap();
    fx.host.symlink(c"/etc/passwd", fx.root, b"l").unwrap();
    let st = fx.host.lstat(fx.child("l")).unwrap();
    assert!(st.is_symlink());
    assert_ne!(st.ino, passwd.ino());
    let id = HostId::of(&st);
    // Read-only operations only: a mistake must not be able to change /etc/passwd.
    for node in [fx.child("l"), Node::Id(id)] {
        assert_eq!(
            fx.host.open(node, darwin_abi::O_RDONLY, 0).unwrap_err(),
            DarwinErrno::ELOOP
        );
        let mut buf = [0u8; 64];
        let len = fx.host.readlink(node, &mut buf).unwrap();
        assert_eq!(&buf[..len], b"/etc/passwd");
        assert_eq!(fx.host.listxattr(node, &mut [], 0), Ok(0));
        assert_eq!(
            fx.host.getxattr(node, c"x", &mut [], 0),
            Err(DarwinErrno::ENOATTR)
        );
    }
    assert_eq!(
        fx.host
            .open(fx.child("l"), darwin_abi::O_WRONLY | darwin_abi::O_TRUNC, 0)
            .unwrap_err(),
        DarwinErrno::ELOOP
    );
    let after = fs::metadata("/etc/passwd").unwrap();
    assert_eq!(after.len(), passwd.len());
    assert_eq!(after.mtime(), passwd.mtime());
}

#[test]
fn symlink_metadata_changes_never_reach_the_target() {
    let fx = Fx::new();
    let target = fx.outside("target");
    fs::write(&target, b"secret").unwrap();
    fs::set_permissions(&target, fs::Permissions::from_mode(0o644)).unwrap();
    let before = fs::metadata(&target).unwrap();
    symlink(&target, fx.path("l")).unwrap();
    let id = fx.id("l");
    let old = HostTimespec {
        sec: 1_000,
        nsec: 5,
    };
    for node in [fx.child("l"), Node::Id(id)] {
        fx.host.utimens(node, &[old, old]).unwrap();
        assert_eq!(fx.host.chmod(node, 0o777), Err(DarwinErrno::ENOTSUP));
    }
    let link = fs::symlink_metadata(fx.path("l")).unwrap();
    assert_eq!((link.mtime(), link.mtime_nsec()), (1_000, 5));
    // Creating "through" the symlink fails instead of writing the target.
    assert_eq!(
        fx.host
            .open(
                fx.child("l"),
                darwin_abi::O_CREAT | darwin_abi::O_WRONLY | darwin_abi::O_TRUNC,
                0o600
            )
            .unwrap_err(),
        DarwinErrno::ELOOP
    );
    // A hard link of the symlink is a symlink, not the target.
    fx.host.link(id, fx.root, b"l2").unwrap();
    assert!(fs::symlink_metadata(fx.path("l2")).unwrap().is_symlink());
    let after = fs::metadata(&target).unwrap();
    assert_eq!(after.mtime(), before.mtime());
    assert_eq!(after.mode(), before.mode());
    assert_eq!(fs::read(&target).unwrap(), b"secret");
    if is_root() {
        fx.host.setxattr(Node::Id(id), c"x", b"v", 0).unwrap();
        assert_eq!(host_xattr(&target, c"trusted.x"), None);
        assert_eq!(host_xattr(&target, c"user.x"), None);
    }
}

// --- Extended attributes --------------------------------------------------------------------

#[test]
fn xattrs_round_trip_with_prefix_hidden_on_files_and_directories() {
    let fx = Fx::new();
    fx.write("f", b"");
    fs::create_dir(fx.path("d")).unwrap();
    for name in ["f", "d"] {
        let node = fx.child(name);
        fx.host.setxattr(node, c"a.b", b"value", 0).unwrap();
        // Stored in the user namespace on the host.
        assert_eq!(
            host_xattr(&fx.path(name), c"user.a.b").as_deref(),
            Some(&b"value"[..])
        );
        // Size probe, then the value.
        assert_eq!(fx.host.getxattr(node, c"a.b", &mut [], 0), Ok(5));
        let mut buf = [0u8; 5];
        assert_eq!(fx.host.getxattr(node, c"a.b", &mut buf, 1), Ok(5));
        assert_eq!(&buf, b"value");
        assert_eq!(
            fx.host.getxattr(node, c"a.b", &mut [0u8; 2], 0),
            Err(DarwinErrno::ERANGE)
        );
        // The listing: prefix removed.
        let mut list = [0u8; 64];
        let len = fx.host.listxattr(node, &mut list, 0).unwrap();
        assert_eq!(&list[..len], b"a.b\0");
        assert_eq!(fx.host.listxattr(node, &mut [], 0), Ok(4));
        assert_eq!(
            fx.host.listxattr(node, &mut [0u8; 3], 0),
            Err(DarwinErrno::ERANGE)
        );
    }
}

#[test]
fn xattr_errors_are_darwin_numbers() {
    let fx = Fx::new();
    fx.write("f", b"");
    let node = fx.child("f");
    // A missing attribute is Darwin ENOATTR (93), not Linux ENODATA (61).
    let err = fx.host.getxattr(node, c"none", &mut [], 0).unwrap_err();
    assert_eq!(err.raw(), 93);
    assert_eq!(
        fx.host
            .setxattr(node, c"none", b"v", darwin_abi::XATTR_REPLACE)
            .unwrap_err()
            .raw(),
        93
    );
    assert_eq!(fx.host.removexattr(node, c"none", 0).unwrap_err().raw(), 93);
    fx.host
        .setxattr(node, c"a", b"1", darwin_abi::XATTR_CREATE)
        .unwrap();
    assert_eq!(
        fx.host.setxattr(node, c"a", b"2", darwin_abi::XATTR_CREATE),
        Err(DarwinErrno::EEXIST)
    );
    fx.host
        .setxattr(node, c"a", b"2", darwin_abi::XATTR_REPLACE)
        .unwrap();
    assert_eq!(
        fx.host.setxattr(
            node,
            c"a",
            b"3",
            darwin_abi::XATTR_CREATE | darwin_abi::XATTR_REPLACE
        ),
        Err(DarwinErrno::EINVAL)
    );
    let long = CString::new(vec![b'n'; 128]).unwrap();
    assert_eq!(
        fx.host.setxattr(node, &long, b"v", 0),
        Err(DarwinErrno::ENAMETOOLONG)
    );
    assert_eq!(
        fx.host.getxattr(node, c"", &mut [], 0),
        Err(DarwinErrno::EINVAL)
    );
    fx.host.removexattr(node, c"a", 0).unwrap();
    assert_eq!(fx.host.listxattr(node, &mut [], 0), Ok(0));
}

#[test]
fn xattrs_through_descriptor_and_identity_agree() {
    let fx = Fx::new();
    fx.write("f", b"");
    let id = fx.id("f");
    let fd = fx.host.open(Node::Id(id), darwin_abi::O_RDONLY, 0).unwrap();
    fx.host
        .setxattr(Node::Fd(fd.as_fd()), c"k", b"fd", 0)
        .unwrap();
    let mut buf = [0u8; 8];
    let len = fx.host.getxattr(Node::Id(id), c"k", &mut buf, 1).unwrap();
    assert_eq!(&buf[..len], b"fd");
    let len = fx
        .host
        .listxattr(Node::Fd(fd.as_fd()), &mut buf, 0)
        .unwrap();
    assert_eq!(&buf[..len], b"k\0");
    fx.host.removexattr(Node::Id(id), c"k", 1).unwrap();
    assert_eq!(
        fx.host.getxattr(Node::Fd(fd.as_fd()), c"k", &mut buf, 0),
        Err(DarwinErrno::ENOATTR)
    );
}

#[test]
fn other_host_namespaces_are_hidden() {
    if !is_root() {
        eprintln!("skipped: trusted.* attributes need root");
        return;
    }
    let fx = Fx::new();
    fx.write("f", b"");
    let file = fs::File::open(fx.path("f")).unwrap();
    sys::fsetxattr(file.as_fd(), c"trusted.hidden", b"1", 0).unwrap();
    sys::fsetxattr(file.as_fd(), c"user.shown", b"2", 0).unwrap();
    let mut list = [0u8; 64];
    let len = fx.host.listxattr(fx.child("f"), &mut list, 0).unwrap();
    assert_eq!(&list[..len], b"shown\0");
    // The Darwin name "hidden" is user.hidden, which does not exist.
    assert_eq!(
        fx.host.getxattr(fx.child("f"), c"hidden", &mut [], 0),
        Err(DarwinErrno::ENOATTR)
    );
}

#[test]
fn symlink_xattrs_use_trusted_namespace() {
    if !is_root() {
        eprintln!("skipped: xattrs on symlinks (trusted.*) need root");
        return;
    }
    let fx = Fx::new();
    let target = fx.outside("target");
    fs::write(&target, b"").unwrap();
    symlink(&target, fx.path("l")).unwrap();
    let id = fx.id("l");
    fx.host
        .setxattr(fx.child("l"), c"a", b"on-link", 0)
        .unwrap();
    let mut buf = [0u8; 16];
    let len = fx.host.getxattr(Node::Id(id), c"a", &mut buf, 1).unwrap();
    assert_eq!(&buf[..len], b"on-link");
    let len = fx.host.listxattr(Node::Id(id), &mut buf, 1).unwrap();
    assert_eq!(&buf[..len], b"a\0");
    assert_eq!(host_xattr(&target, c"trusted.a"), None);
    assert_eq!(host_xattr(&target, c"user.a"), None);
    fx.host.removexattr(fx.child("l"), c"a", 1).unwrap();
    assert_eq!(fx.host.listxattr(Node::Id(id), &mut buf, 1), Ok(0));
}

// --- Names ------------------------------------------------------------------------------------

#[test]
fn rename_with_swap_and_excl() {
    let fx = Fx::new();
    fx.write("a", b"A");
    fx.write("b", b"B");
    // RENAME_SWAP (2) exchanges.
    fx.host
        .rename(fx.root, b"a", fx.root, b"b", darwin_abi::RENAME_SWAP)
        .unwrap();
    assert_eq!(fs::read(fx.path("a")).unwrap(), b"B");
    assert_eq!(fs::read(fx.path("b")).unwrap(), b"A");
    // RENAME_EXCL (4) refuses an existing target, allows a new one.
    assert_eq!(
        fx.host
            .rename(fx.root, b"a", fx.root, b"b", darwin_abi::RENAME_EXCL),
        Err(DarwinErrno::EEXIST)
    );
    fx.host
        .rename(fx.root, b"a", fx.root, b"c", darwin_abi::RENAME_EXCL)
        .unwrap();
    assert_eq!(fs::read(fx.path("c")).unwrap(), b"B");
    // Swap with a missing name, both flags, an unknown flag.
    assert_eq!(
        fx.host
            .rename(fx.root, b"c", fx.root, b"none", darwin_abi::RENAME_SWAP),
        Err(DarwinErrno::ENOENT)
    );
    assert_eq!(
        fx.host.rename(fx.root, b"c", fx.root, b"d", 6),
        Err(DarwinErrno::EINVAL)
    );
    assert_eq!(
        fx.host.rename(fx.root, b"c", fx.root, b"d", 1),
        Err(DarwinErrno::EINVAL)
    );
    // A plain rename replaces.
    fx.host.rename(fx.root, b"c", fx.root, b"b", 0).unwrap();
    assert_eq!(fs::read(fx.path("b")).unwrap(), b"B");
    assert!(!fx.path("c").exists());
}

/// Every entry of `stream` from where it is.
fn drain(stream: &mut LinuxDirStream) -> Vec<crate::host::HostDirent> {
    let mut out = Vec::new();
    while let Some(e) = stream.next_entry().unwrap() {
        out.push(e.to_dirent());
    }
    out
}

#[test]
fn dir_streams_list_entries_without_dots_and_rewind() {
    let fx = Fx::new();
    fx.write("file", b"");
    fs::create_dir(fx.path("dir")).unwrap();
    symlink("file", fx.path("link")).unwrap();
    for i in 0..300 {
        fx.write(&format!("many-{i:03}-{}", "x".repeat(40)), b"");
    }
    let fd = fx.host.open(Node::Id(fx.root), O_DIR, 0).unwrap();
    let mut stream = fx.host.open_dir(fd.as_fd()).unwrap();
    let out = drain(&mut stream);
    assert_eq!(out.len(), 303);
    let find = |n: &[u8]| out.iter().find(|e| e.name == n).unwrap().clone();
    assert_eq!(find(b"file").typ, darwin_abi::DT_REG);
    assert_eq!(find(b"dir").typ, darwin_abi::DT_DIR);
    assert_eq!(find(b"link").typ, darwin_abi::DT_LNK);
    assert_eq!(
        find(b"file").ino,
        fs::symlink_metadata(fx.path("file")).unwrap().ino()
    );
    assert!(out.iter().all(|e| e.name != b"." && e.name != b".."));
    // The buffer is fixed, whatever the directory's size.
    assert!(
        stream.footprint() <= DIRENT_BUF + 256,
        "{}",
        stream.footprint()
    );
    // At the end it stays at the end; a rewind starts over and sees changes.
    assert!(stream.next_entry().unwrap().is_none());
    fs::remove_file(fx.path("file")).unwrap();
    stream.rewind().unwrap();
    let again = drain(&mut stream);
    assert_eq!(again.len(), 302);
    assert!(again.iter().all(|e| e.name != b"file"));
    // A second stream over the same descriptor is independent of the first's position... and
    // starts at the beginning.
    let mut other = fx.host.open_dir(fd.as_fd()).unwrap();
    assert_eq!(drain(&mut other).len(), 302);
}

// --- Only regular files and directories are opened ----------------------------------------

/// `mkfifo` of `path` (the tool: no `unsafe` in tests).
fn mkfifo(path: &std::path::Path) {
    let status = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn open_of_a_fifo_is_enxio_and_never_blocks() {
    let fx = Fx::new();
    mkfifo(&fx.path("fifo"));
    let id = fx.id("fifo");
    let create = darwin_abi::O_CREAT | darwin_abi::O_WRONLY;
    // In the test thread: a regression would hang the test rather than pass.
    for flags in [
        darwin_abi::O_RDONLY,
        darwin_abi::O_WRONLY,
        darwin_abi::O_RDWR,
        create,
    ] {
        let err = fx.host.open(fx.child("fifo"), flags, 0o600).unwrap_err();
        assert_eq!(err, DarwinErrno::ENXIO, "Child, flags {flags:#x}");
        let err = fx.host.open(Node::Id(id), flags, 0).unwrap_err();
        assert_eq!(err, DarwinErrno::ENXIO, "Id, flags {flags:#x}");
    }
    // With O_EXCL the name exists: EEXIST, nothing opened.
    let err = fx
        .host
        .open(fx.child("fifo"), create | darwin_abi::O_EXCL, 0o600)
        .unwrap_err();
    assert_eq!(err, DarwinErrno::EEXIST);
    let err = fx.host.open(fx.child("fifo"), O_DIR, 0).unwrap_err();
    assert_eq!(err, DarwinErrno::ENOTDIR);
}

#[test]
fn open_with_create_makes_or_opens_only_regular_files() {
    let fx = Fx::new();
    let create = darwin_abi::O_CREAT | darwin_abi::O_RDWR;
    let fd = fx.host.open(fx.child("new"), create, 0o600).unwrap();
    assert_eq!(
        fx.host.lstat(Node::Fd(fd.as_fd())).unwrap().file_type(),
        mode::S_IFREG
    );
    assert_eq!(fs::metadata(fx.path("new")).unwrap().mode() & 0o777, 0o600);
    // Existing: opened (without O_EXCL), the same file.
    fx.write("new", b"data");
    let again = fx.host.open(fx.child("new"), create, 0o644).unwrap();
    let mut buf = [0u8; 4];
    assert_eq!(fx.host.pread(again.as_fd(), &mut buf, 0).unwrap(), 4);
    assert_eq!(&buf, b"data");
    // A directory with O_CREAT and write access: EISDIR, as open(2) says.
    fs::create_dir(fx.path("d")).unwrap();
    assert_eq!(
        fx.host.open(fx.child("d"), create, 0o600).unwrap_err(),
        DarwinErrno::EISDIR
    );
}

#[test]
fn create_calls_work_on_parent_descriptors() {
    let fx = Fx::new();
    fx.host.mkdir(fx.root, b"d", 0o700).unwrap();
    let d = fx.id("d");
    assert_eq!(fs::metadata(fx.path("d")).unwrap().mode() & 0o7777, 0o700);
    let create = darwin_abi::O_CREAT | darwin_abi::O_EXCL | darwin_abi::O_WRONLY;
    let fd = fx.host.open(Node::Child(d, b"f"), create, 0o600).unwrap();
    assert_eq!(fx.host.pwrite(fd.as_fd(), b"x", 0), Ok(1));
    assert_eq!(fs::metadata(fx.path("d/f")).unwrap().mode() & 0o7777, 0o600);
    assert_eq!(
        fx.host
            .open(Node::Child(d, b"f"), create, 0o600)
            .unwrap_err(),
        DarwinErrno::EEXIST
    );
    fx.host.symlink(c"../nowhere", d, b"s").unwrap();
    assert_eq!(
        fs::read_link(fx.path("d/s")).unwrap(),
        PathBuf::from("../nowhere")
    );
    assert_eq!(fx.host.mkdir(d, b"f", 0o700), Err(DarwinErrno::EEXIST));
    let f = HostId::of(&fx.host.lstat(Node::Child(d, b"f")).unwrap());
    fx.host.link(f, fx.root, b"f2").unwrap();
    assert_eq!(fs::read(fx.path("f2")).unwrap(), b"x");
    assert_eq!(fx.host.lstat(Node::Id(f)).unwrap().nlink, 2);
    fx.host.unlink(d, b"f").unwrap();
    fx.host.unlink(d, b"s").unwrap();
    fx.host.rmdir(fx.root, b"d").unwrap();
    assert_eq!(fx.host.lstat(Node::Id(d)), Err(DarwinErrno::ENOENT));
}

#[test]
fn chmod_and_utimens_on_files() {
    let fx = Fx::new();
    fx.write("f", b"");
    let id = fx.id("f");
    fx.host.chmod(Node::Id(id), 0o640).unwrap();
    assert_eq!(fs::metadata(fx.path("f")).unwrap().mode() & 0o7777, 0o640);
    fx.host.chmod(fx.child("f"), 0o600).unwrap();
    assert_eq!(fs::metadata(fx.path("f")).unwrap().mode() & 0o7777, 0o600);
    let t = HostTimespec {
        sec: 1_234_567,
        nsec: 890,
    };
    // atime set, mtime left alone.
    let before = fs::metadata(fx.path("f")).unwrap();
    fx.host
        .utimens(Node::Id(id), &[t, HostTimespec::OMIT])
        .unwrap();
    let meta = fs::metadata(fx.path("f")).unwrap();
    assert_eq!((meta.atime(), meta.atime_nsec()), (1_234_567, 890));
    assert_eq!(meta.mtime_nsec(), before.mtime_nsec());
    // mtime to now, through a descriptor.
    let fd = fx.host.open(Node::Id(id), darwin_abi::O_RDWR, 0).unwrap();
    fx.host
        .utimens(
            Node::Fd(fd.as_fd()),
            &[HostTimespec::OMIT, HostTimespec::NOW],
        )
        .unwrap();
    let st = fx.host.lstat(Node::Id(id)).unwrap();
    assert!(st.mtime.sec > 1_600_000_000);
    assert_eq!(st.atime, t);
    fx.host.chmod(Node::Fd(fd.as_fd()), 0o644).unwrap();
    assert_eq!(fs::metadata(fx.path("f")).unwrap().mode() & 0o7777, 0o644);
    // A Linux UTIME_NOW value is not a Darwin one.
    let bad = HostTimespec {
        sec: 0,
        nsec: (1 << 30) - 1,
    };
    assert_eq!(
        fx.host.utimens(Node::Id(id), &[bad, bad]),
        Err(DarwinErrno::EINVAL)
    );
}

// --- Data -------------------------------------------------------------------------------------

#[test]
fn data_calls_and_seek_hole_data() {
    let fx = Fx::new();
    fx.write("f", b"");
    let fd = fx.host.open(fx.child("f"), darwin_abi::O_RDWR, 0).unwrap();
    let fd = fd.as_fd();
    // Data at 1 MiB only: a hole before it.
    let mib = 1 << 20;
    assert_eq!(fx.host.pwrite(fd, b"data", mib), Ok(4));
    assert_eq!(fx.host.lseek(fd, 0, darwin_abi::SEEK_DATA), Ok(mib));
    assert_eq!(fx.host.lseek(fd, 0, darwin_abi::SEEK_HOLE), Ok(0));
    assert_eq!(fx.host.lseek(fd, 0, darwin_abi::SEEK_END), Ok(mib + 4));
    assert_eq!(fx.host.lseek(fd, 0, 9), Err(DarwinErrno::EINVAL));
    fx.host.truncate(fd, 10).unwrap();
    assert_eq!(fx.host.lstat(Node::Fd(fd)).unwrap().size, 10);
    assert_eq!(fx.host.truncate(fd, u64::MAX), Err(DarwinErrno::EFBIG));
    assert_eq!(
        fx.host.pread(fd, &mut [0u8; 4], u64::MAX),
        Err(DarwinErrno::EINVAL)
    );
    fx.host.fsync(fd, SyncMode::Fsync).unwrap();
    fx.host.fsync(fd, SyncMode::Full).unwrap();
    fx.host.set_nocache(fd).unwrap();
}

#[test]
fn preallocate_keeps_size_and_punch_hole_frees() {
    let fx = Fx::new();
    fx.write("f", &[7u8; 8192]);
    let fd = fx.host.open(fx.child("f"), darwin_abi::O_RDWR, 0).unwrap();
    let fd = fd.as_fd();
    let before = fx.host.lstat(Node::Fd(fd)).unwrap();
    let store = HostFstore {
        flags: darwin_abi::F_ALLOCATEALL,
        posmode: darwin_abi::F_PEOFPOSMODE,
        offset: 0,
        length: 1 << 20,
    };
    fx.host.preallocate(fd, &store).unwrap();
    let after = fx.host.lstat(Node::Fd(fd)).unwrap();
    assert_eq!(after.size, 8192);
    assert!(after.blocks >= before.blocks + 2048, "{after:?}");
    let volume = HostFstore {
        posmode: darwin_abi::F_VOLPOSMODE,
        ..store
    };
    assert_eq!(fx.host.preallocate(fd, &volume), Err(DarwinErrno::EINVAL));
    // Punch the first 4 KiB: zeros, same size.
    fx.host.punch_hole(fd, 0, 4096).unwrap();
    let mut buf = [1u8; 8];
    assert_eq!(fx.host.pread(fd, &mut buf, 0), Ok(8));
    assert_eq!(buf, [0u8; 8]);
    assert_eq!(fx.host.pread(fd, &mut buf, 4096), Ok(8));
    assert_eq!(buf, [7u8; 8]);
    assert_eq!(fx.host.lstat(Node::Fd(fd)).unwrap().size, 8192);
}

#[test]
fn ofd_locks_conflict_between_descriptions_with_darwin_types() {
    let fx = Fx::new();
    fx.write("f", b"0123456789");
    let a = fx.host.open(fx.child("f"), darwin_abi::O_RDWR, 0).unwrap();
    let b = fx.host.open(fx.child("f"), darwin_abi::O_RDWR, 0).unwrap();
    let write = |typ| HostFlock {
        start: 0,
        len: 5,
        pid: 0,
        typ,
        whence: 0,
    };
    let mut lock = write(darwin_abi::F_WRLCK);
    fx.host
        .lock(a.as_fd(), darwin_abi::F_OFD_SETLK, &mut lock)
        .unwrap();
    // Another description sees the write lock (Darwin F_WRLCK is 3, Linux 1).
    let mut probe = write(darwin_abi::F_RDLCK);
    fx.host
        .lock(b.as_fd(), darwin_abi::F_OFD_GETLK, &mut probe)
        .unwrap();
    assert_eq!(probe.typ, 3);
    assert_eq!((probe.start, probe.len), (0, 5));
    // ... and cannot take it: Darwin EAGAIN (35).
    let mut take = write(darwin_abi::F_WRLCK);
    let err = fx
        .host
        .lock(b.as_fd(), darwin_abi::F_OFD_SETLK, &mut take)
        .unwrap_err();
    assert_eq!(err.raw(), 35);
    // A free range reports F_UNLCK (2 on both).
    let mut free = HostFlock {
        start: 6,
        ..write(darwin_abi::F_WRLCK)
    };
    fx.host
        .lock(b.as_fd(), darwin_abi::F_OFD_GETLK, &mut free)
        .unwrap();
    assert_eq!(free.typ, darwin_abi::F_UNLCK);
    let mut unlock = write(darwin_abi::F_UNLCK);
    fx.host
        .lock(a.as_fd(), darwin_abi::F_OFD_SETLK, &mut unlock)
        .unwrap();
    fx.host
        .lock(b.as_fd(), darwin_abi::F_OFD_SETLK, &mut take)
        .unwrap();
    // POSIX commands work too; unknown commands and types are EINVAL.
    let mut posix = write(darwin_abi::F_RDLCK);
    fx.host
        .lock(a.as_fd(), darwin_abi::F_GETLK, &mut posix)
        .unwrap();
    assert_eq!(
        fx.host.lock(a.as_fd(), 42, &mut posix),
        Err(DarwinErrno::EINVAL)
    );
    let mut bad = write(9);
    assert_eq!(
        fx.host.lock(a.as_fd(), darwin_abi::F_OFD_SETLK, &mut bad),
        Err(DarwinErrno::EINVAL)
    );
}

#[test]
fn flock_conflict_is_darwin_ewouldblock() {
    let fx = Fx::new();
    fx.write("f", b"");
    let a = fx
        .host
        .open(fx.child("f"), darwin_abi::O_RDONLY, 0)
        .unwrap();
    let b = fx
        .host
        .open(fx.child("f"), darwin_abi::O_RDONLY, 0)
        .unwrap();
    fx.host.flock(a.as_fd(), darwin_abi::LOCK_EX).unwrap();
    let err = fx
        .host
        .flock(b.as_fd(), darwin_abi::LOCK_EX | darwin_abi::LOCK_NB)
        .unwrap_err();
    assert_eq!(err, DarwinErrno::EWOULDBLOCK);
    assert_eq!(err.raw(), 35);
    fx.host.flock(a.as_fd(), darwin_abi::LOCK_UN).unwrap();
    fx.host
        .flock(b.as_fd(), darwin_abi::LOCK_SH | darwin_abi::LOCK_NB)
        .unwrap();
    assert_eq!(fx.host.flock(b.as_fd(), 0x40), Err(DarwinErrno::EINVAL));
}

// --- Volume -----------------------------------------------------------------------------------

#[test]
fn statfs_reports_volfs_and_a_type_name() {
    let fx = Fx::new();
    fx.write("f", b"");
    symlink("f", fx.path("l")).unwrap();
    let st = fx.host.statfs(Node::Id(fx.root)).unwrap();
    assert!(st.supports_volfs());
    assert!(!st.read_only());
    assert!(st.bsize > 0 && st.iosize > 0 && st.blocks > 0);
    assert!(!st.fstypename().is_empty());
    assert_eq!(
        fx.host.statfs(fx.child("l")).unwrap().fstypename(),
        st.fstypename()
    );
    assert_eq!(fx.host.name_max(Node::Id(fx.root)), Ok(255));
    assert_eq!(fx.host.name_max(fx.child("l")), Ok(255));
}

#[test]
fn case_sensitive_without_casefold_and_stored_name_is_exact() {
    let fx = Fx::new();
    fx.write("Name", b"");
    assert_eq!(fx.host.case_sensitive(fx.root), Ok(true));
    let mut buf = [0u8; 16];
    let len = fx.host.stored_name(fx.root, b"Name", &mut buf).unwrap();
    assert_eq!(&buf[..len], b"Name");
    assert_eq!(
        fx.host.stored_name(fx.root, b"name", &mut buf),
        Err(DarwinErrno::ENOENT)
    );
    assert_eq!(
        fx.host.stored_name(fx.root, b"Name", &mut [0u8; 2]),
        Err(DarwinErrno::ERANGE)
    );
    // Two names for one inode: the name asked for, not the first one listed.
    fs::hard_link(fx.path("Name"), fx.path("Other")).unwrap();
    let len = fx.host.stored_name(fx.root, b"Other", &mut buf).unwrap();
    assert_eq!(&buf[..len], b"Other");
}
