//! Arbitrary requests into `fuse_server::Server` over the macOS backend on its Linux adapter,
//! serving a fresh directory that has a sibling, `outside`, the guest must never reach.
//!
//! Input layout:
//!
//! ```text
//! byte 0      setup: bit 0 writeback, bit 1 POSIX and flock locks, bit 2 no xattrs
//! then, repeated:
//!   byte      fix-ups: bit 0 set the header's len to the message length, bit 1 clear
//!             total_extlen, bits 2-7 the node id (0-63) written into the header
//!   u16 LE    message length, then the message bytes
//! ```
//!
//! Checked: every request gets a well-formed reply (or none, for the FORGET kinds), and after
//! each input `outside` still holds exactly `secret` with its contents and metadata.
#![no_main]

use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::OnceLock;

use fuse_abi::{InHeader, InitFlags, Opcode, OutHeader};
use fuse_server::mem::{MemReader, MemWriter};
use fuse_server::test_utils::{init_payload, request};
use fuse_server::{Completion, NegotiationConfig, Server, ServerConfig, TransportFacts};
use libfuzzer_sys::fuzz_target;
use passthrough_macos::host::LinuxHost;
use passthrough_macos::{Config, PassthroughFs};
use zerocopy::FromBytes;

/// The work directory (`share/`, `outside/secret`), made once per process.
fn work() -> &'static PathBuf {
    static WORK: OnceLock<PathBuf> = OnceLock::new();
    WORK.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("virtiofs-fuzz-macos-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("outside")).expect("work dir");
        std::fs::write(dir.join("outside/secret"), b"secret").expect("secret");
        dir
    })
}

/// What must never change: the listing of `outside` and the secret's bytes, mode and times.
fn outside_state() -> (Vec<String>, Vec<u8>, u32, i64, i64) {
    let outside = work().join("outside");
    let mut names: Vec<String> = std::fs::read_dir(&outside)
        .expect("outside")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let secret = outside.join("secret");
    let meta = std::fs::symlink_metadata(&secret).expect("secret metadata");
    let data = std::fs::read(&secret).expect("secret data");
    (names, data, meta.mode(), meta.mtime(), meta.ctime())
}

fn exchange(server: &Server<PassthroughFs<LinuxHost>>, msg: &[u8], space: &mut [u8]) {
    let header = InHeader::read_from_prefix(msg).ok().map(|(h, _)| h);
    let mut r = MemReader::new(msg);
    let mut w = MemWriter::new(space);
    match server.handle_message(&mut r, &mut w) {
        Ok(Completion::Replied { len }) => {
            let out = w.written();
            assert_eq!(len, out.len());
            let (h, _) = OutHeader::read_from_prefix(out).expect("a reply has a header");
            assert_eq!(h.len.get() as usize, len);
            if let (Some(header), true) = (header, msg.len() >= 40) {
                assert_eq!(h.unique.get(), header.unique.get());
                assert!(
                    !matches!(
                        Opcode::try_from(header.opcode.get()),
                        Ok(Opcode::Forget | Opcode::BatchForget | Opcode::NotifyReply)
                    ),
                    "a no-reply request got a reply"
                );
            }
            let e = h.error.get();
            assert!((-511..=0).contains(&e), "error {e}");
        }
        Ok(Completion::NoReply | Completion::Pending) => assert!(w.written().is_empty()),
        Err(e) => panic!("unexpected error over host memory: {e}"),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&setup, mut rest)) = data.split_first() else {
        return;
    };
    let before = outside_state();
    let share = work().join("share");
    let _ = std::fs::remove_dir_all(&share);
    std::fs::create_dir(&share).expect("share");
    let config = Config {
        writeback: setup & 1 != 0,
        posix_locks: setup & 2 != 0,
        flock_locks: setup & 2 != 0,
        xattr: setup & 4 == 0,
        ..Config::new(&share)
    };
    let fs = PassthroughFs::new(LinuxHost::default(), config).expect("backend");
    let server = Server::new(
        fs,
        ServerConfig {
            transport: TransportFacts::virtio_fs(128),
            negotiation: NegotiationConfig {
                writeback_cache: setup & 1 != 0,
                ..NegotiationConfig::default()
            },
        },
    );
    let mut space = vec![0u8; 135_168];
    let init = request(
        Opcode::Init as u32,
        1,
        0,
        &init_payload(41, InitFlags::all(), 131_072),
    );
    exchange(&server, &init, &mut space);
    while let [fix, l0, l1, tail @ ..] = rest {
        let len = usize::from(u16::from_le_bytes([*l0, *l1])).min(tail.len());
        let (msg, next) = tail.split_at(len);
        rest = next;
        let mut msg = msg.to_vec();
        if fix & 1 != 0 && msg.len() >= 4 {
            let n = u32::try_from(msg.len()).unwrap_or(u32::MAX);
            msg[0..4].copy_from_slice(&n.to_le_bytes());
        }
        if fix & 2 != 0 && msg.len() >= 38 {
            msg[36..38].copy_from_slice(&[0, 0]);
        }
        if msg.len() >= 24 {
            // Small node ids, so that requests reach inodes earlier ones created.
            msg[16..24].copy_from_slice(&u64::from(fix >> 2).to_le_bytes());
        }
        exchange(&server, &msg, &mut space);
    }
    drop(server);
    assert_eq!(outside_state(), before, "the guest reached outside the share");
});
