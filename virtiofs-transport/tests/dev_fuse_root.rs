//! Root tier: a real mount through `/dev/fuse` on the host kernel, served by a minimal
//! hand-written backend (INIT, GETATTR of the root, ENOSYS for the rest).
//!
//! Run with `cargo test -p virtiofs-transport --test dev_fuse_root -- --ignored` as root.

#![cfg(all(feature = "dev-fuse", target_os = "linux"))]
#![allow(clippy::unwrap_used, clippy::cast_possible_truncation)]

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use fuse_abi::{
    Attr, AttrOut, EntryOut, InHeader, InitIn, InitOut, OpenOut, OutHeader, U16, U32, U64,
};
use fuse_server::mem::{MemReader, MemWriter};
use fuse_server::{Reader, Writer};
use virtiofs_transport::dev_fuse::{ChannelConfig, FuseMount, MountOptions, serve};
use zerocopy::{FromZeros, IntoBytes};

const INIT: u32 = 26;
const GETATTR: u32 = 3;
const ENOSYS: i32 = 38;

fn reply(w: &mut dyn Writer, unique: u64, error: i32, body: &[u8]) {
    let out = OutHeader {
        len: U32::new((16 + body.len()) as u32),
        error: fuse_abi::I32::new(-error),
        unique: U64::new(unique),
    };
    w.write_all(out.as_bytes()).unwrap();
    w.write_all(body).unwrap();
}

/// The minimal backend: an empty root directory, mode 0755, inode 1.
fn handle(r: &mut dyn Reader, w: &mut dyn Writer) {
    let mut hdr = InHeader::new_zeroed();
    if r.read_exact(hdr.as_mut_bytes()).is_err() {
        return;
    }
    let unique = hdr.unique.get();
    match hdr.opcode.get() {
        INIT => {
            let mut init = InitIn::new_zeroed();
            r.read_exact(init.as_mut_bytes()).unwrap();
            let mut out = InitOut::new_zeroed();
            out.major = U32::new(7);
            out.minor = U32::new(init.minor.get().min(fuse_abi::KERNEL_MINOR_VERSION));
            out.max_readahead = init.max_readahead;
            out.max_write = U32::new(128 * 1024);
            out.time_gran = U32::new(1);
            out.max_background = U16::new(16);
            reply(w, unique, 0, out.as_bytes());
        }
        GETATTR if hdr.nodeid.get() == fuse_abi::ROOT_ID => {
            let mut out = AttrOut::new_zeroed();
            out.attr = Attr {
                ino: U64::new(1),
                size: U64::new(4096),
                blocks: U64::new(8),
                mode: U32::new(0o040_755),
                nlink: U32::new(2),
                blksize: U32::new(4096),
                ..Attr::new_zeroed()
            };
            reply(w, unique, 0, out.as_bytes());
        }
        2 | 42 => {} // FORGET, BATCH_FORGET: no reply.
        _ => reply(w, unique, ENOSYS, &[]),
    }
}

/// Aborts the FUSE connection mounted at `dir` (fusectl), so a broken server cannot hang the
/// test: finds the mount's device minor in mountinfo without touching the mount itself.
fn abort_connection(dir: &Path) {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let target = dir.to_string_lossy();
    for line in info.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        if fields.get(4) == Some(&target.as_ref()) {
            if let Some(minor) = fields.get(2).and_then(|d| d.split(':').nth(1)) {
                let _ = std::fs::write(format!("/sys/fs/fuse/connections/{minor}/abort"), "1");
            }
        }
    }
}

/// Runs `check` on the mounted directory with a watchdog.
fn with_mount(threads: usize, options: MountOptions, check: impl FnOnce(&Path) + Send) {
    with_mount_served(
        threads,
        options,
        &|r, w| {
            handle(r, w);
            false
        },
        check,
    );
}

/// [`with_mount`] with any request handler.
fn with_mount_served(
    threads: usize,
    options: MountOptions,
    handler: &(dyn Fn(&mut MemReader<'_>, &mut MemWriter<'_>) -> bool + Sync),
    check: impl FnOnce(&Path) + Send,
) {
    let _ = std::process::Command::new("mount")
        .args(["-t", "fusectl", "none", "/sys/fs/fuse/connections"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status();
    let dir = tempfile::tempdir().unwrap();
    let mount = FuseMount::mount(dir.path(), &options, ChannelConfig::default()).unwrap();
    std::thread::scope(|s| {
        let server = s.spawn(|| serve(&mount, threads, handler));
        let (tx, rx) = mpsc::channel();
        let path = dir.path();
        s.spawn(move || {
            check(path);
            tx.send(()).unwrap();
        });
        if rx.recv_timeout(Duration::from_secs(30)).is_err() {
            abort_connection(dir.path());
            panic!("the mount did not answer within 30 s");
        }
        mount.unmount().unwrap();
        server.join().unwrap().unwrap();
    });
}

#[test]
#[ignore = "needs root and /dev/fuse"]
fn mount_and_stat_the_root() {
    let options = MountOptions {
        default_permissions: true,
        allow_other: true,
        subtype: Some("vt-test".to_owned()),
        max_read: Some(131072),
        ..MountOptions::default()
    };
    with_mount(1, options, |dir| {
        let meta = std::fs::metadata(dir).unwrap();
        assert!(meta.is_dir());
        assert_eq!(meta.mode(), 0o040_755);
        assert_eq!(meta.ino(), 1);
        assert_eq!(meta.nlink(), 2);
        // Anything else is ENOSYS from the minimal backend.
        let err = std::fs::metadata(dir.join("missing")).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(ENOSYS));
        let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap();
        let line = mounts
            .lines()
            .find(|l| l.contains(&*dir.to_string_lossy()))
            .unwrap();
        assert!(line.starts_with("virtiofs-device "), "{line}");
        assert!(line.contains(" fuse.vt-test "), "{line}");
        assert!(line.contains("default_permissions"), "{line}");
        assert!(line.contains("allow_other"), "{line}");
        assert!(line.contains("max_read=131072"), "{line}");
    });
}

#[test]
#[ignore = "needs root and /dev/fuse"]
fn cloned_channels_serve_in_parallel() {
    with_mount(3, MountOptions::default(), |dir| {
        std::thread::scope(|s| {
            for _ in 0..6 {
                s.spawn(|| {
                    for _ in 0..50 {
                        assert!(std::fs::metadata(dir).unwrap().is_dir());
                        let _ = std::fs::metadata(dir.join("x"));
                    }
                });
            }
        });
    });
}

/// The real dispatcher (`fuse_server::Server`) over its null test backend, through
/// `/dev/fuse`: INIT negotiation against the running kernel, then a stat of the root.
#[test]
#[ignore = "needs root and /dev/fuse"]
fn fuse_server_over_dev_fuse() {
    use fuse_server::test_utils::{TestFs, all_capabilities};
    use fuse_server::{NegotiationConfig, Server, ServerConfig, TransportFacts};

    let buffer = ChannelConfig::default().request_buffer() as u32;
    let server = Server::new(
        TestFs::null(all_capabilities()),
        ServerConfig {
            transport: TransportFacts::dev_fuse(true, buffer),
            negotiation: NegotiationConfig::default(),
        },
    );
    let options = MountOptions {
        default_permissions: true,
        ..MountOptions::default()
    };
    let handler = |r: &mut MemReader<'_>, w: &mut MemWriter<'_>| {
        matches!(
            server.handle_message(r, w),
            Ok(fuse_server::Completion::Pending)
        )
    };
    with_mount_served(2, options, &handler, |dir| {
        assert!(std::fs::metadata(dir).unwrap().is_dir());
        assert!(std::fs::metadata(dir.join("file")).unwrap().is_file());
    });
    assert!(server.negotiated().is_some(), "INIT was negotiated");
}

/// Root's 0600 file `secret` (inode 2) on top of the minimal backend, which, like the project's
/// backends, checks no permissions itself: INIT, LOOKUP, GETATTR, OPEN, READ, FLUSH, RELEASE.
fn secret_handler(r: &mut dyn Reader, w: &mut dyn Writer) {
    const SECRET: &[u8] = b"root only\n";
    let mut hdr = InHeader::new_zeroed();
    if r.read_exact(hdr.as_mut_bytes()).is_err() {
        return;
    }
    let unique = hdr.unique.get();
    let attr = Attr {
        ino: U64::new(2),
        size: U64::new(SECRET.len() as u64),
        mode: U32::new(0o100_600),
        nlink: U32::new(1),
        blksize: U32::new(4096),
        ..Attr::new_zeroed()
    };
    match (hdr.opcode.get(), hdr.nodeid.get()) {
        (1, fuse_abi::ROOT_ID) => {
            let mut name = vec![0u8; r.remaining()];
            r.read_exact(&mut name).unwrap();
            if name != b"secret\0" {
                return reply(w, unique, 2, &[]);
            }
            let mut out = EntryOut::new_zeroed();
            out.nodeid = U64::new(2);
            out.attr = attr;
            reply(w, unique, 0, out.as_bytes());
        }
        (GETATTR, 2) => {
            let mut out = AttrOut::new_zeroed();
            out.attr = attr;
            reply(w, unique, 0, out.as_bytes());
        }
        (14, 2) => {
            let mut out = OpenOut::new_zeroed();
            out.fh = U64::new(7);
            reply(w, unique, 0, out.as_bytes());
        }
        (15, 2) => {
            let mut read = [0u8; 40];
            r.read_exact(&mut read).unwrap();
            let offset = u64::from_le_bytes(read[8..16].try_into().unwrap());
            let data = if offset == 0 { SECRET } else { &[][..] };
            reply(w, unique, 0, data);
        }
        (18 | 25, 2) => reply(w, unique, 0, &[]),
        _ => {
            // Put the header back for the minimal backend: it reads it itself.
            let mut rest = vec![0u8; r.remaining()];
            r.read_exact(&mut rest).unwrap();
            let mut msg = hdr.as_bytes().to_vec();
            msg.extend_from_slice(&rest);
            let mut replay = fuse_server::mem::MemReader::new(&msg);
            handle(&mut replay, w);
        }
    }
}

/// `allow_other` without `default_permissions` must not let other host users past the file
/// mode: the backend runs every request with the daemon's credentials.
#[test]
#[ignore = "needs root and /dev/fuse"]
fn allow_other_never_lets_other_users_read_root_files() {
    use std::os::unix::process::CommandExt;

    let options = MountOptions {
        allow_other: true,
        ..MountOptions::default()
    };
    let handler = |r: &mut MemReader<'_>, w: &mut MemWriter<'_>| {
        secret_handler(r, w);
        false
    };
    with_mount_served(1, options, &handler, |dir| {
        let secret = dir.join("secret");
        assert_eq!(
            std::fs::read(&secret).unwrap(),
            b"root only\n",
            "root reads it"
        );
        let out = std::process::Command::new("cat")
            .arg(&secret)
            .uid(65534)
            .gid(65534)
            .output()
            .unwrap();
        assert!(
            !out.status.success(),
            "nobody read root's 0600 file: {:?}",
            String::from_utf8_lossy(&out.stdout)
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("Permission denied"), "{stderr}");
    });
}
