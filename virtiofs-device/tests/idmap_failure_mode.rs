//! Root tier: the reported failure mode of ALLOW_IDMAP on a host `/dev/fuse` mount.
//!
//! Since 6.12 the kernel fails the whole connection (ECONNREFUSED on every request) when an
//! INIT reply sets ALLOW_IDMAP on a mount without `default_permissions` (and without
//! POSIX_ACL in the same reply, which would imply it). A backend that declares ALLOW_IDMAP
//! support but no POSIX ACLs, mounted without `default_permissions`:
//!
//! - through normal negotiation, the mount works: negotiation drops ALLOW_IDMAP;
//! - with negotiation bypassed (this test rewrites the INIT reply's flags in the reply buffer
//!   after the server wrote it and before it goes to the kernel, [`force_init_flags`]), the
//!   same set-up gets ECONNREFUSED on a stat of the root. This half proves the first one can
//!   fail.
//!
//! Run with `cargo test -p virtiofs-device --test idmap_failure_mode -- --ignored` as root, on
//! a kernel ≥ 6.12 (the bypass half checks the running kernel's version and says so if older).

#![allow(clippy::unwrap_used, clippy::cast_possible_truncation)]

mod common;

use std::sync::mpsc;
use std::time::Duration;

use common::dev_fuse::{abort_connection, mount_fusectl};
use fuse_abi::{InitFlags, InitOut, OutHeader, U32};
use fuse_server::mem::{MemReader, MemWriter};
use fuse_server::test_utils::{TestFs, all_capabilities};
use fuse_server::{NegotiationConfig, Server, ServerConfig, TransportFacts, Writer};
use virtiofs_transport::dev_fuse::{ChannelConfig, FuseMount, MountOptions, serve};
use zerocopy::IntoBytes;

const ECONNREFUSED: i32 = 111;

/// The backend: every flag but POSIX_ACL, and the uid/gid obligation of ALLOW_IDMAP met.
fn idmap_server() -> Server<TestFs> {
    let mut caps = all_capabilities();
    caps.flags.remove(InitFlags::POSIX_ACL);
    assert!(caps.flags.contains(InitFlags::ALLOW_IDMAP) && caps.handles_invalid_uidgid);
    let buffer = ChannelConfig::default().request_buffer() as u32;
    Server::new(
        TestFs::null(caps),
        ServerConfig {
            // No default_permissions on this mount.
            transport: TransportFacts::dev_fuse(false, buffer),
            negotiation: NegotiationConfig::default(),
        },
    )
}

/// Handles one request; if it was an INIT the server accepted, ORs `forced` into the flags of
/// the reply the server just wrote (the reply's flags are the negotiated ones), bypassing
/// every negotiation rule. The server's own view of the connection is unchanged. This stands
/// in for a server whose negotiation is broken; production code has no such path.
fn force_init_flags(
    server: &Server<TestFs>,
    forced: InitFlags,
    r: &mut MemReader<'_>,
    w: &mut MemWriter<'_>,
) {
    let start = w.bytes_written();
    let before = server.negotiated();
    let _ = server.handle_message(r, w);
    let (None, Some((_, flags))) = (before, server.negotiated()) else {
        return;
    };
    let (low, high) = (flags | forced).to_wire();
    let body = start + size_of::<OutHeader>();
    for (offset, value) in [
        (std::mem::offset_of!(InitOut, flags), low),
        (std::mem::offset_of!(InitOut, flags2), high),
    ] {
        w.write_at(body + offset, U32::new(value).as_bytes())
            .unwrap();
    }
}

/// Mounts `server` at a fresh directory WITHOUT `default_permissions`, and returns the result
/// of a stat of the root (the raw errno on failure), with a 30 s watchdog. With `forced`,
/// the INIT reply carries those flags on top of the negotiated ones ([`force_init_flags`]).
fn stat_root_through(server: &Server<TestFs>, forced: InitFlags) -> Result<(), i32> {
    mount_fusectl();
    let dir = tempfile::tempdir().unwrap();
    let options = MountOptions {
        default_permissions: false,
        ..MountOptions::default()
    };
    let mount = FuseMount::mount(dir.path(), &options, ChannelConfig::default()).unwrap();
    let handler = |r: &mut MemReader<'_>, w: &mut MemWriter<'_>| {
        force_init_flags(server, forced, r, w);
        false
    };
    std::thread::scope(|s| {
        let served = s.spawn(|| serve(&mount, 1, handler));
        let (tx, rx) = mpsc::channel();
        let path = dir.path();
        s.spawn(move || {
            let result = std::fs::metadata(path)
                .map(|m| assert!(m.is_dir()))
                .map_err(|e| e.raw_os_error().unwrap_or(-1));
            tx.send(result).unwrap();
        });
        let result = rx.recv_timeout(Duration::from_secs(30));
        if result.is_err() {
            abort_connection(dir.path());
        }
        mount.unmount().unwrap();
        let _ = served.join().unwrap();
        result.expect("the mount did not answer within 30 s")
    })
}

/// `(major, minor)` of the running kernel.
fn kernel_version() -> (u32, u32) {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    let mut parts = release
        .trim()
        .split(|c: char| !c.is_ascii_digit())
        .map(|p| p.parse::<u32>().unwrap_or(0));
    (parts.next().unwrap_or(0), parts.next().unwrap_or(0))
}

#[test]
#[ignore = "needs root and /dev/fuse"]
fn negotiation_drops_idmap_without_default_permissions() {
    let server = idmap_server();
    assert_eq!(
        stat_root_through(&server, InitFlags::empty()),
        Ok(()),
        "stat of the root"
    );
    let (_, flags) = server.negotiated().expect("INIT was negotiated");
    assert!(!flags.contains(InitFlags::ALLOW_IDMAP), "{flags:?}");
    assert!(!flags.contains(InitFlags::POSIX_ACL), "{flags:?}");
}

#[test]
#[ignore = "needs root and /dev/fuse"]
fn forced_idmap_without_default_permissions_is_econnrefused() {
    let version = kernel_version();
    assert!(
        version >= (6, 12),
        "the kernel refuses ALLOW_IDMAP without default_permissions only since 6.12; \
         this one is {version:?}"
    );
    let server = idmap_server();
    assert_eq!(
        stat_root_through(&server, InitFlags::ALLOW_IDMAP),
        Err(ECONNREFUSED),
        "stat of the root"
    );
}
