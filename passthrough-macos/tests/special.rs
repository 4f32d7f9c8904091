//! Host special files in the share (a device node or FIFO put there by a host user or a previous
//! run) are never opened through the backend: CREATE without `O_EXCL` of such a name, OPEN of
//! its inode, and truncation answer an errno, promptly, with no data.
// The Linux adapter is the host here; on a Mac these would need `DarwinHost`.
#![cfg(target_os = "linux")]
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use common::{Fixture, root};
use fuse_server::SetAttr;

const O_RDONLY: u32 = 0;
const O_WRONLY: u32 = 1;
const O_RDWR: u32 = 2;

/// How long an open may take before the test calls it a hang.
const PROMPT: Duration = Duration::from_secs(5);

fn run(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{cmd} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn mknod(path: &Path, kind: &str, major: u32, minor: u32) {
    let path = path.to_str().unwrap();
    run(
        "mknod",
        &[path, kind, &major.to_string(), &minor.to_string()],
    );
}

/// Runs `f` on a thread; `None` if it did not finish within [`PROMPT`] (it may then stay
/// blocked: the caller unblocks it).
fn promptly<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(PROMPT).ok()
}

/// CREATE (no `O_EXCL`) of `name`, which a host user made a special file: an errno, and
/// whatever it returned is read and shown.
fn create_refused(fx: &Fixture, name: &str) {
    for flags in [O_RDONLY, O_WRONLY, O_RDWR] {
        match fx.create(root(), name, 0o644, flags) {
            Err(_) => {}
            Ok((e, fh)) => {
                let data = fx.read(e.nodeid, fh, 0, 16);
                panic!("CREATE {name} flags {flags} opened it: read {data:?}");
            }
        }
    }
}

/// OPEN and SETATTR(size) of the looked-up inode of `name` answer an errno.
fn open_refused(fx: &Fixture, name: &str) {
    let e = fx.lookup(root(), name).unwrap();
    for flags in [O_RDONLY, O_WRONLY, O_RDWR] {
        assert!(fx.open(e.nodeid, flags).is_err(), "OPEN {name} {flags}");
    }
    let set = SetAttr {
        size: Some(0),
        ..SetAttr::default()
    };
    assert!(fx.setattr(e.nodeid, set).is_err(), "truncate {name}");
}

#[test]
#[ignore = "needs root (mknod of a character device)"]
fn a_host_char_device_in_the_share_is_never_opened() {
    let fx = Fixture::new();
    // /dev/zero: reads would return zeros if it were opened.
    mknod(&fx.host_path("zero"), "c", 1, 5);
    create_refused(&fx, "zero");
    open_refused(&fx, "zero");
}

#[test]
fn a_host_fifo_in_the_share_answers_promptly() {
    let fx = Arc::new(Fixture::new());
    let fifo = fx.host_path("fifo");
    run("mkfifo", &[fifo.to_str().unwrap()]);
    for flags in [O_RDONLY, O_WRONLY, O_RDWR] {
        let worker = Arc::clone(&fx);
        let outcome = promptly(move || worker.create(root(), "fifo", 0o644, flags).map(drop));
        if outcome.is_none() {
            // Unblock the stuck worker (it waits for the other end) before failing.
            let _ = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(&fifo);
        }
        let outcome = outcome.unwrap_or_else(|| panic!("CREATE of a FIFO ({flags}) hung"));
        assert!(outcome.is_err(), "CREATE of a FIFO ({flags}) opened it");
    }
    let worker = Arc::clone(&fx);
    let outcome = promptly(move || {
        let e = worker.lookup(root(), "fifo").unwrap();
        [O_RDONLY, O_WRONLY, O_RDWR].map(|flags| worker.open(e.nodeid, flags))
    });
    let outcome = outcome.expect("OPEN of a FIFO hung");
    assert!(outcome.iter().all(Result::is_err), "{outcome:?}");
    // The FIFO is still there, untouched, and still a FIFO to the guest.
    let attr = fx
        .getattr(fx.lookup(root(), "fifo").unwrap().nodeid)
        .unwrap();
    assert_eq!(attr.mode & fuse_abi::mode::S_IFMT, fuse_abi::mode::S_IFIFO);
}

/// A loop device over a file outside the share: a block node of it inside the share must
/// neither read nor change that file.
#[test]
#[ignore = "needs root (losetup, mknod of a block device)"]
fn a_host_block_device_in_the_share_never_reaches_its_backing_file() {
    let fx = Fixture::new();
    let backing = fx.outside().join("disk");
    std::fs::write(&backing, vec![b's'; 64 * 1024]).unwrap();
    let loopdev = run("losetup", &["-f", "--show", backing.to_str().unwrap()]);
    struct Detach(String);
    impl Drop for Detach {
        fn drop(&mut self) {
            let _ = Command::new("losetup").args(["-d", &self.0]).status();
        }
    }
    let _detach = Detach(loopdev.clone());
    let rdev = run("stat", &["-c", "%t %T", &loopdev]);
    let mut parts = rdev.split(' ').map(|h| u32::from_str_radix(h, 16).unwrap());
    let (major, minor) = (parts.next().unwrap(), parts.next().unwrap());
    mknod(&fx.host_path("blk"), "b", major, minor);

    for flags in [O_RDONLY, O_WRONLY, O_RDWR] {
        match fx.create(root(), "blk", 0o644, flags) {
            Err(_) => {}
            Ok((e, fh)) => {
                let _ = fx.write(e.nodeid, fh, 0, b"guest was here");
                let data = fx.read(e.nodeid, fh, 0, 16);
                panic!("CREATE of a block device ({flags}) opened it: read {data:?}");
            }
        }
    }
    open_refused(&fx, "blk");
    let _ = Command::new("blockdev")
        .args(["--flushbufs", &loopdev])
        .status();
    let after = std::fs::read(&backing).unwrap();
    assert!(after.iter().all(|&b| b == b's'), "the backing file changed");
}

#[test]
fn a_host_socket_in_the_share_is_never_opened() {
    let fx = Fixture::new();
    let _listener = std::os::unix::net::UnixListener::bind(fx.host_path("sock")).unwrap();
    create_refused(&fx, "sock");
    open_refused(&fx, "sock");
}

#[test]
fn create_over_an_existing_directory_is_eisdir() {
    let fx = Fixture::new();
    fx.mkdir(root(), "d").unwrap();
    for flags in [O_RDONLY, O_WRONLY, O_RDWR] {
        assert_eq!(
            fx.create(root(), "d", 0o644, flags).unwrap_err(),
            fuse_abi::Errno::EISDIR
        );
    }
}

#[test]
fn refused_creates_leave_no_descriptor_behind() {
    let fx = Fixture::new();
    run("mkfifo", &[fx.host_path("fifo").to_str().unwrap()]);
    let before = fx.fs.fd_budget().0;
    for _ in 0..100 {
        assert!(fx.create(root(), "fifo", 0o644, O_WRONLY).is_err());
    }
    assert_eq!(fx.fs.fd_budget().0, before);
}

/// A device, FIFO or socket the guest made (a host regular file whose override carries the
/// type) is a special file to the guest: OPEN of it and CREATE over its name are refused like
/// those of a real one, although the host object is harmless.
#[test]
fn emulated_special_files_are_never_opened() {
    use common::{cctx, ctx, name};
    use fuse_abi::mode;
    use fuse_server::FileSystem;
    let fx = Fixture::new();
    for (n, kind, rdev) in [
        ("chr", mode::S_IFCHR, (1 << 8) | 5),
        ("blk", mode::S_IFBLK, (7 << 8) | 1),
        ("fifo", mode::S_IFIFO, 0),
        ("sock", mode::S_IFSOCK, 0),
    ] {
        let e = fx
            .fs
            .mknod(&ctx(), &cctx(), root(), name(n), kind | 0o666, rdev)
            .unwrap();
        assert_eq!(e.attr.mode & mode::S_IFMT, kind);
        for flags in [O_RDONLY, O_WRONLY, O_RDWR] {
            assert_eq!(fx.open(e.nodeid, flags), Err(fuse_abi::Errno::ENXIO), "{n}");
        }
        create_refused(&fx, n);
    }
}
