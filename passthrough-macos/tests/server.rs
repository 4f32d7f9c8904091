//! The macOS backend behind `fuse_server::Server`: raw request bytes in, reply bytes out, as a
//! hostile guest would send them, and FUSE_INIT as each kernel offers it.
// The Linux adapter is the host here; on a Mac these would need `DarwinHost`.
#![cfg(target_os = "linux")]
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use fuse_abi::{
    CreateIn, EntryOut, InitFlags, InitOut, MkdirIn, OpenOut, ReadIn, SetattrIn, U32, U64, WriteIn,
};
use fuse_server::NegotiationConfig;
use fuse_server::test_utils::request;
use passthrough_macos::host::LinuxHost;
use passthrough_macos::{Config, PassthroughFs};
use zerocopy::{FromBytes, IntoBytes};

const LOOKUP: u32 = 1;
const SETATTR: u32 = 4;
const SYMLINK: u32 = 6;
const MKDIR: u32 = 9;
const LINK: u32 = 13;
const OPEN: u32 = 14;
const READ: u32 = 15;
const WRITE: u32 = 16;
const GETXATTR: u32 = 22;
const INIT: u32 = 26;
const CREATE: u32 = 35;

struct Rig {
    tmp: tempfile::TempDir,
    rig: ServerRig<PassthroughFs<LinuxHost>>,
}

impl std::ops::Deref for Rig {
    type Target = ServerRig<PassthroughFs<LinuxHost>>;

    fn deref(&self) -> &Self::Target {
        &self.rig
    }
}

impl Rig {
    fn new() -> Rig {
        Rig::with(|c| c, InitFlags::all(), 46)
    }

    /// A server on the backend, after an INIT offering `offered` at `minor`.
    fn with(f: impl FnOnce(Config) -> Config, offered: InitFlags, minor: u32) -> Rig {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir(tmp.path().join("share")).unwrap();
        std::fs::create_dir(tmp.path().join("outside")).unwrap();
        std::fs::write(tmp.path().join("outside/secret"), b"secret").unwrap();
        let config = f(Config::new(tmp.path().join("share")));
        let fs = PassthroughFs::new(LinuxHost::default(), config).unwrap();
        let rig = ServerRig::initialised(fs, offered, minor);
        Rig { tmp, rig }
    }

    fn outside(&self) -> std::path::PathBuf {
        self.tmp.path().join("outside")
    }

    fn share(&self) -> std::path::PathBuf {
        self.tmp.path().join("share")
    }
}

fn args(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

/// The INIT reply's flags for an offer of `offered` at `minor` with `config`.
fn negotiated(f: impl FnOnce(Config) -> Config, offered: InitFlags, minor: u32) -> InitFlags {
    let tmp = tempfile::tempdir().unwrap();
    let config = f(Config::new(tmp.path()));
    // The operator's policy asks for the writeback cache whenever the backend is configured
    // for it, as the daemon's --writeback does.
    let negotiation = NegotiationConfig {
        writeback_cache: config.writeback,
        ..NegotiationConfig::default()
    };
    let fs = PassthroughFs::new(LinuxHost::default(), config).unwrap();
    let (hdr, body) = ServerRig::new(fs, negotiation).init(offered, minor);
    assert_eq!(hdr.error.get(), 0);
    let init = InitOut::read_from_prefix(&body).unwrap().0;
    InitFlags::from_wire(init.flags.get(), init.flags2.get())
}

#[test]
fn never_posix_acl_or_allow_idmap_whatever_the_kernel_offers() {
    // 6.1 offers up to 7.38, 6.12 7.41, 7.x 7.46; every flag offered.
    for minor in [38, 41, 46] {
        for writeback in [false, true] {
            let flags = negotiated(
                |c| passthrough_macos::Config { writeback, ..c },
                InitFlags::all(),
                minor,
            );
            assert!(!flags.contains(InitFlags::POSIX_ACL), "minor {minor}");
            assert!(!flags.contains(InitFlags::ALLOW_IDMAP), "minor {minor}");
            assert!(!flags.contains(InitFlags::EXPORT_SUPPORT), "minor {minor}");
            assert_eq!(flags.contains(InitFlags::WRITEBACK_CACHE), writeback);
            assert!(flags.contains(InitFlags::SUBMOUNTS), "minor {minor}");
        }
    }
}

#[test]
fn raw_names_with_slash_or_dots_are_refused() {
    let rig = Rig::new();
    let before = snapshot(&rig.outside());
    assert_eq!(
        rig.errno(request(LOOKUP, 2, 1, b"../outside/secret\0")),
        libc::EINVAL
    );
    assert_eq!(rig.errno(request(LOOKUP, 3, 1, b"..\0")), libc::EINVAL);
    assert_eq!(rig.errno(request(LOOKUP, 4, 1, b".\0")), libc::EINVAL);
    assert_eq!(rig.errno(request(LOOKUP, 5, 1, b"/etc\0")), libc::EINVAL);
    let evil = format!("{}/evil\0", rig.outside().display());
    let mk = MkdirIn {
        mode: U32::new(0o755),
        umask: U32::new(0),
    };
    assert_eq!(
        rig.errno(request(
            MKDIR,
            6,
            1,
            &args(&[mk.as_bytes(), evil.as_bytes()])
        )),
        libc::EINVAL
    );
    let cr = CreateIn {
        flags: U32::new(2),
        mode: U32::new(0o644),
        ..Default::default()
    };
    assert_eq!(
        rig.errno(request(
            CREATE,
            7,
            1,
            &args(&[cr.as_bytes(), evil.as_bytes()])
        )),
        libc::EINVAL
    );
    assert_eq!(
        rig.errno(request(SYMLINK, 8, 1, &args(&[evil.as_bytes(), b"/etc\0"]))),
        libc::EINVAL
    );
    assert_eq!(snapshot(&rig.outside()), before);
}

#[test]
fn a_symlink_to_the_outside_is_never_followed() {
    let rig = Rig::new();
    let target = format!("{}/secret\0", rig.outside().display());
    let (hdr, body) = rig.send(request(SYMLINK, 2, 1, &args(&[b"l\0", target.as_bytes()])));
    assert_eq!(hdr.error.get(), 0);
    let nodeid = EntryOut::read_from_prefix(&body).unwrap().0.nodeid.get();
    // OPEN, truncating SETATTR and GETXATTR on the symlink's node id.
    let open = fuse_abi::OpenIn {
        flags: U32::new(2),
        ..Default::default()
    };
    assert_eq!(
        rig.errno(request(OPEN, 3, nodeid, open.as_bytes())),
        libc::ELOOP
    );
    let set = SetattrIn {
        valid: U32::new(fuse_abi::SetattrValid::SIZE.bits()),
        size: U64::new(0),
        ..Default::default()
    };
    let err = rig.errno(request(SETATTR, 4, nodeid, set.as_bytes()));
    assert_ne!(err, 0);
    let gx = fuse_abi::GetxattrIn {
        size: U32::new(100),
        ..Default::default()
    };
    let _ = rig.send(request(
        GETXATTR,
        5,
        nodeid,
        &args(&[gx.as_bytes(), b"user.x\0"]),
    ));
    assert_eq!(
        std::fs::read(rig.outside().join("secret")).unwrap(),
        b"secret"
    );
}

#[test]
fn raw_link_to_a_directory_or_unknown_node_is_refused() {
    let rig = Rig::new();
    let li = fuse_abi::LinkIn {
        oldnodeid: U64::new(1),
    };
    assert_eq!(
        rig.errno(request(LINK, 2, 1, &args(&[li.as_bytes(), b"x\0"]))),
        libc::EPERM
    );
    let li = fuse_abi::LinkIn {
        oldnodeid: U64::new(99_999),
    };
    assert_eq!(
        rig.errno(request(LINK, 3, 1, &args(&[li.as_bytes(), b"x\0"]))),
        libc::ESTALE
    );
}

#[test]
fn create_write_read_through_the_server() {
    let rig = Rig::new();
    let cr = CreateIn {
        flags: U32::new(2),
        mode: U32::new(0o644),
        umask: U32::new(0o022),
        ..Default::default()
    };
    let (hdr, body) = rig.send(request(CREATE, 2, 1, &args(&[cr.as_bytes(), b"f\0"])));
    assert_eq!(hdr.error.get(), 0);
    let (entry, rest) = EntryOut::read_from_prefix(&body).unwrap();
    assert_eq!(entry.attr.mode.get(), 0o100_644);
    let open = OpenOut::read_from_prefix(rest).unwrap().0;
    let nodeid = entry.nodeid.get();
    let wi = WriteIn {
        fh: open.fh,
        size: U32::new(5),
        ..Default::default()
    };
    let (hdr, _) = rig.send(request(WRITE, 3, nodeid, &args(&[wi.as_bytes(), b"hello"])));
    assert_eq!(hdr.error.get(), 0);
    let ri = ReadIn {
        fh: open.fh,
        size: U32::new(100),
        ..Default::default()
    };
    let (hdr, body) = rig.send(request(READ, 4, nodeid, ri.as_bytes()));
    assert_eq!(hdr.error.get(), 0);
    assert_eq!(body, b"hello");
    assert_eq!(std::fs::read(rig.share().join("f")).unwrap(), b"hello");
}

#[test]
fn every_opcode_with_garbage_gets_a_reply() {
    let rig = Rig::new();
    for opcode in 1..=53u32 {
        // No reply to FORGET, INTERRUPT, NOTIFY_REPLY, BATCH_FORGET; INIT and DESTROY end the
        // session.
        if [2, INIT, 36, 38, 41, 42].contains(&opcode) {
            continue;
        }
        for body in [&b""[..], &[0xff; 7][..], &[0u8; 200][..]] {
            let (hdr, _) = rig.send(request(opcode, 100 + u64::from(opcode), 1, body));
            assert!(hdr.error.get() <= 0, "opcode {opcode}");
        }
    }
    // Still serving.
    assert_eq!(
        rig.errno(request(LOOKUP, 999, 1, b"missing\0")),
        libc::ENOENT
    );
}
