//! Arbitrary bytes into `fuse_server::Server` over the null backend.
//!
//! Input layout (so the fuzzer can reach the paths behind a successful INIT):
//!
//! ```text
//! byte 0      setup: bit 0 /dev/fuse (else virtio-fs), bit 1 default_permissions,
//!             bit 2 DAX window, bits 3-4 posix_acl, bit 5 writeback, bit 6 the backend
//!             declares every flag (else the offered word below), bit 7 no INIT first
//! byte 1      kernel minor: 23 + b % 30 (so 7.23 ..= 7.52)
//! bytes 2..10 the kernel's offered INIT flags (u64 LE)
//! then, repeated:
//!   byte      reply space: one of 0, 8, 16, 17, 64, 80, 4096, 135168 bytes
//!   byte      fix-ups: bit 0 set the header's len to the message length,
//!             bit 1 clear total_extlen
//!   u16 LE    message length, then the message bytes
//! ```
//!
//! Every reply is checked: `out_header.len` == bytes written == the reported length, `unique`
//! echoed, error in −511..=0 and header-only when nonzero; FORGET-type requests get nothing.
#![no_main]

use fuse_abi::{InHeader, InitFlags, Opcode, OutHeader};
use fuse_server::mem::{MemReader, MemWriter};
use fuse_server::test_utils::{NullFs, all_capabilities, init_payload, request};
use fuse_server::{
    Capabilities, Completion, NegotiationConfig, PosixAcl, Server, ServerConfig, TransportFacts,
};
use libfuzzer_sys::fuzz_target;
use zerocopy::FromBytes;

const SPACES: [usize; 8] = [0, 8, 16, 17, 64, 80, 4096, 135_168];

fn server(setup: u8, offered: InitFlags) -> Server<NullFs> {
    let mut transport = if setup & 1 != 0 {
        TransportFacts::dev_fuse(setup & 2 != 0, 1 << 20)
    } else {
        TransportFacts::virtio_fs(128)
    };
    if setup & 4 != 0 {
        transport = transport.with_dax_window(12);
    }
    let negotiation = NegotiationConfig {
        posix_acl: match (setup >> 3) & 3 {
            0 => PosixAcl::Never,
            1 => PosixAcl::Always,
            _ => PosixAcl::Auto,
        },
        writeback_cache: setup & 32 != 0,
        ..NegotiationConfig::default()
    };
    let caps = if setup & 64 != 0 {
        all_capabilities()
    } else {
        Capabilities::new()
            .with_flags(offered)
            .with_invalid_uidgid_handling()
    };
    Server::new(
        NullFs::null(caps),
        ServerConfig {
            transport,
            negotiation,
        },
    )
}

fn exchange(server: &Server<NullFs>, msg: &[u8], space: &mut [u8]) {
    let unique = InHeader::read_from_prefix(msg)
        .map(|(h, _)| h.unique.get())
        .ok();
    let opcode = InHeader::read_from_prefix(msg)
        .ok()
        .and_then(|(h, _)| Opcode::try_from(h.opcode.get()).ok());
    let room = space.len();
    let mut r = MemReader::new(msg);
    let mut w = MemWriter::new(space);
    match server.handle_message(&mut r, &mut w) {
        Ok(Completion::Replied { len }) => {
            let out = w.written();
            assert_eq!(len, out.len());
            let (h, _) = OutHeader::read_from_prefix(out).expect("a reply has a header");
            assert_eq!(h.len.get() as usize, len);
            if let (Some(u), true) = (unique, msg.len() >= 40) {
                assert_eq!(h.unique.get(), u);
            }
            let e = h.error.get();
            assert!((-511..=0).contains(&e), "error {e}");
            if e != 0 {
                assert_eq!(len, 16, "error replies carry no payload");
            }
            if msg.len() >= 40 {
                assert!(
                    !matches!(
                        opcode,
                        Some(Opcode::Forget | Opcode::BatchForget | Opcode::NotifyReply)
                    ),
                    "a no-reply request got a reply"
                );
            }
        }
        Ok(Completion::NoReply | Completion::Pending) => assert!(w.written().is_empty()),
        Err(fuse_server::Error::ReplySpace { .. }) => assert!(room < 16),
        Err(e) => panic!("unexpected error over host memory: {e}"),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&setup, rest)) = data.split_first() else {
        return;
    };
    let Some((&minor, rest)) = rest.split_first() else {
        return;
    };
    let Some((flag_bytes, mut rest)) = rest.split_at_checked(8) else {
        return;
    };
    let offered =
        InitFlags::from_bits_retain(u64::from_le_bytes(flag_bytes.try_into().unwrap_or([0; 8])));
    let server = server(setup, offered);
    let mut space = vec![0u8; SPACES[SPACES.len() - 1]];
    if setup & 128 == 0 {
        let init = request(
            Opcode::Init as u32,
            2,
            0,
            &init_payload(23 + u32::from(minor % 30), offered, 131_072),
        );
        exchange(&server, &init, &mut space);
    }
    while let [sel, fix, l0, l1, tail @ ..] = rest {
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
        let room = SPACES[usize::from(*sel) % SPACES.len()];
        exchange(&server, &msg, &mut space[..room]);
    }
    server.reset();
});
