//! The backend behind `fuse_server::Server`: raw request bytes in, reply bytes out, as a
//! hostile guest would send them.
#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

mod common;

use common::*;
use fuse_abi::{CreateIn, EntryOut, InitFlags, MkdirIn, OpenOut, ReadIn, U32, U64, WriteIn};
use fuse_server::mem::{MemReader, MemWriter};
use fuse_server::test_utils::request;
use zerocopy::{FromBytes, IntoBytes};

const LOOKUP: u32 = 1;
const MKDIR: u32 = 9;
const SYMLINK: u32 = 6;
const LINK: u32 = 13;
const READ: u32 = 15;
const WRITE: u32 = 16;
const CREATE: u32 = 35;

struct Rig {
    fx: Fixture,
    rig: ServerRig<passthrough_linux::PassthroughFs>,
}

impl std::ops::Deref for Rig {
    type Target = ServerRig<passthrough_linux::PassthroughFs>;

    fn deref(&self) -> &Self::Target {
        &self.rig
    }
}

impl Rig {
    fn new() -> Rig {
        Rig::with(Fixture::new())
    }

    fn with(fx: Fixture) -> Rig {
        let fs = passthrough_linux::PassthroughFs::new(fx.fs.config().clone()).unwrap();
        let rig = ServerRig::initialised(fs, InitFlags::all(), 46);
        Rig { fx, rig }
    }
}

fn args(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

#[test]
fn negotiated_flags_are_a_subset_of_declared() {
    let rig = Rig::new();
    let (_, flags) = rig.server.negotiated().unwrap();
    let declared = rig.server.filesystem().declared_flags();
    let extra = flags - declared - InitFlags::INIT_EXT;
    assert!(extra.is_empty(), "negotiated but not declared: {extra:?}");
}

#[test]
fn readdirplus_is_negotiated_only_when_configured() {
    let both = InitFlags::DO_READDIRPLUS | InitFlags::READDIRPLUS_AUTO;
    let (_, flags) = Rig::new().server.negotiated().unwrap();
    assert!(flags.contains(both), "{flags:?}");
    let rig = Rig::with(Fixture::with(|b| b.readdirplus(false)));
    let (_, flags) = rig.server.negotiated().unwrap();
    assert!(!flags.intersects(both), "{flags:?}");
}

#[test]
fn raw_lookup_with_slash_or_dotdot_is_refused() {
    let rig = Rig::new();
    let before = snapshot(&rig.fx.outside());
    assert_eq!(
        rig.errno(request(LOOKUP, 2, 1, b"../outside/secret\0")),
        libc::EINVAL
    );
    assert_eq!(rig.errno(request(LOOKUP, 3, 1, b"..\0")), libc::EINVAL);
    assert_eq!(rig.errno(request(LOOKUP, 4, 1, b"/etc\0")), libc::EINVAL);
    assert_eq!(snapshot(&rig.fx.outside()), before);
}

#[test]
fn raw_mkdir_and_create_with_absolute_names_create_nothing_outside() {
    let rig = Rig::new();
    let evil = format!("{}/evil\0", rig.fx.outside().display());
    let mk = MkdirIn {
        mode: U32::new(0o755),
        umask: U32::new(0),
    };
    assert_eq!(
        rig.errno(request(
            MKDIR,
            2,
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
            3,
            1,
            &args(&[cr.as_bytes(), evil.as_bytes()])
        )),
        libc::EINVAL
    );
    assert!(!rig.fx.outside().join("evil").exists());
}

#[test]
fn raw_symlink_with_absolute_name_is_refused_and_absolute_target_is_inert() {
    // GHSA-2gv2-cffp-j227: a FUSE_SYMLINK whose *name* is an absolute host path.
    let rig = Rig::new();
    let evil = format!("{}/planted\0", rig.fx.outside().display());
    assert_eq!(
        rig.errno(request(
            SYMLINK,
            2,
            1,
            &args(&[evil.as_bytes(), b"/etc/passwd\0"])
        )),
        libc::EINVAL
    );
    assert!(!rig.fx.outside().join("planted").exists());
    // A plain name with an absolute target is created as a link and never followed.
    let target = format!("{}/secret\0", rig.fx.outside().display());
    let (hdr, _) = rig.send(request(SYMLINK, 3, 1, &args(&[b"ok\0", target.as_bytes()])));
    assert_eq!(hdr.error.get(), 0);
    assert!(
        std::fs::symlink_metadata(rig.fx.host("ok"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
}

#[test]
fn raw_link_to_unknown_or_root_node_is_refused() {
    let rig = Rig::new();
    let li = fuse_abi::LinkIn {
        oldnodeid: U64::new(1),
    }; // the root: a directory
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
        ..Default::default()
    };
    let (hdr, body) = rig.send(request(CREATE, 2, 1, &args(&[cr.as_bytes(), b"f\0"])));
    assert_eq!(hdr.error.get(), 0);
    let (entry, rest) = EntryOut::read_from_prefix(&body).unwrap();
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
    assert_eq!(std::fs::read(rig.fx.host("f")).unwrap(), b"hello");
}

#[test]
fn forget_of_root_with_huge_count_through_the_server() {
    let rig = Rig::new();
    let fi = fuse_abi::ForgetIn {
        nlookup: U64::new(u64::MAX),
    };
    let mut out = vec![0u8; 4096];
    let req = request(2, 2, 1, fi.as_bytes());
    let mut r = MemReader::new(&req);
    let mut w = MemWriter::new(&mut out);
    rig.server.handle_message(&mut r, &mut w).unwrap();
    assert_eq!(rig.errno(request(LOOKUP, 3, 1, b"missing\0")), libc::ENOENT);
}
