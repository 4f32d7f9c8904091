//! Property tests: over random kernel offers (all 64 bits, minors 0..99, several payload
//! sizes), random capability sets, both transports and every configuration, the INIT reply the
//! server writes is accepted by the kernel model for 6.1, 6.12, 6.18 and 7.3, and every
//! negotiation invariant of `DESIGN.md` holds.
//!
//! `PROPTEST_CASES` overrides the 10,000 cases.

use fuse_abi::{InHeader, InitFlags, InitOut, Opcode, U16, U32, U64};
use proptest::prelude::*;
use zerocopy::{FromBytes, IntoBytes};

use super::dispatch::send_raw;
use super::kernel_model::{Kernel, Mount, Verdict, process_init_reply};
use crate::negotiate::{
    CachePolicy, EXTENSIONS_MINOR, MIN_KERNEL_MINOR, NegotiationConfig, PosixAcl, Readdirplus,
    TransportFacts, TransportKind,
};
use crate::test_utils::TestFs;
use crate::{Capabilities, Completion, Server, ServerConfig};

/// One generated INIT request and the world around it.
#[derive(Clone, Debug)]
struct Case {
    major: u32,
    minor: u32,
    flags: u32,
    flags2: u32,
    max_readahead: u32,
    /// How many bytes of the 64-byte `fuse_init_in` the kernel sends (8, 16, 20, 64, or more).
    payload_len: usize,
    unique: u64,
    caps: Capabilities,
    transport: TransportFacts,
    config: NegotiationConfig,
    enable_uring: bool,
}

/// Base offers of real kernels (`kernel-fuse.md` §1), to mix with fully random ones.
const REAL_LOW: [u32; 3] = [0x73ff_fffb, 0x7bff_fffb, 0x7fff_fffb];
const REAL_HIGH: [u32; 5] = [0x009, 0x01d, 0x1dd, 0x5dd, 0x5fd];

fn flag_words() -> impl Strategy<Value = (u32, u32)> {
    prop_oneof![
        (any::<u32>(), any::<u32>()),
        (
            prop::sample::select(REAL_LOW.to_vec()),
            prop::sample::select(REAL_HIGH.to_vec()),
            any::<u32>(),
            0u32..4,
        )
            .prop_map(|(low, high, noise, pick)| {
                // Sometimes add random high bits (PASSTHROUGH, OVER_IO_URING, undefined ones).
                let high = if pick == 0 { high | noise } else { high };
                (low, high)
            }),
    ]
}

fn capabilities() -> impl Strategy<Value = Capabilities> {
    (
        prop_oneof![any::<u64>(), Just(u64::MAX), Just(InitFlags::all().bits())],
        any::<bool>(),
        prop_oneof![any::<u32>(), 0u32..(1 << 21)],
        prop_oneof![any::<u16>(), 0u16..300],
        prop_oneof![
            any::<u32>(),
            0u32..2,
            Just(1_000_000_000),
            Just(1_000_000_001)
        ],
    )
        .prop_map(
            |(flags, idmap_ok, max_write, max_pages, time_gran)| Capabilities {
                flags: InitFlags::from_bits_retain(flags),
                handles_invalid_uidgid: idmap_ok,
                max_write,
                max_pages,
                time_gran,
            },
        )
}

fn transport() -> impl Strategy<Value = TransportFacts> {
    prop_oneof![
        (
            prop_oneof![Just(16u16), Just(128), Just(1024), any::<u16>()],
            any::<bool>(),
            0u16..32
        )
            .prop_map(|(queue, dax, align)| {
                let t = TransportFacts::virtio_fs(queue);
                if dax { t.with_dax_window(align) } else { t }
            }),
        (
            any::<bool>(),
            prop_oneof![Just(1u32 << 20), Just(135_168), 0u32..(8 << 20)],
            any::<bool>(),
        )
            .prop_map(|(dp, buffer, dax)| {
                // A DAX window on /dev/fuse is nonsense; the server must ignore it.
                let t = TransportFacts::dev_fuse(dp, buffer);
                if dax { t.with_dax_window(12) } else { t }
            }),
    ]
}

fn config() -> impl Strategy<Value = NegotiationConfig> {
    (
        prop::sample::select(vec![PosixAcl::Never, PosixAcl::Auto, PosixAcl::Always]),
        any::<bool>(),
        prop::sample::select(vec![
            Readdirplus::Never,
            Readdirplus::Auto,
            Readdirplus::Always,
        ]),
        prop::sample::select(vec![
            CachePolicy::Never,
            CachePolicy::Auto,
            CachePolicy::Always,
        ]),
        any::<u16>(),
        any::<u16>(),
        any::<u16>(),
        any::<u32>(),
    )
        .prop_map(
            |(posix_acl, writeback_cache, readdirplus, cache, max_pages, bg, cong, ra)| {
                NegotiationConfig {
                    posix_acl,
                    writeback_cache,
                    readdirplus,
                    cache,
                    max_pages,
                    max_background: bg,
                    congestion_threshold: cong,
                    max_readahead: ra,
                }
            },
        )
}

fn case() -> impl Strategy<Value = Case> {
    (
        prop_oneof![8 => Just(7u32), 1 => 0u32..7, 1 => 8u32..10],
        prop_oneof![0u32..100, 36u32..47],
        flag_words(),
        any::<u32>(),
        prop::sample::select(vec![8usize, 16, 20, 64, 72]),
        any::<u64>().prop_map(|u| u & !1),
        capabilities(),
        transport(),
        config(),
        any::<bool>(),
    )
        .prop_map(
            |(
                major,
                minor,
                (flags, flags2),
                max_readahead,
                payload_len,
                unique,
                caps,
                transport,
                config,
                enable_uring,
            )| Case {
                major,
                minor,
                flags,
                flags2,
                max_readahead,
                payload_len,
                unique,
                caps,
                transport,
                config,
                enable_uring,
            },
        )
}

impl Case {
    fn message(&self) -> Vec<u8> {
        let init = fuse_abi::InitIn {
            major: U32::new(self.major),
            minor: U32::new(self.minor),
            max_readahead: U32::new(self.max_readahead),
            flags: U32::new(self.flags),
            flags2: U32::new(self.flags2),
            ..fuse_abi::InitIn::default()
        };
        let mut payload = init.as_bytes().to_vec();
        payload.resize(self.payload_len, 0);
        let hdr = InHeader {
            len: U32::new(u32::try_from(40 + payload.len()).unwrap_or(0)),
            opcode: U32::new(Opcode::Init as u32),
            unique: U64::new(self.unique),
            total_extlen: U16::new(0),
            ..InHeader::default()
        };
        [hdr.as_bytes(), &payload].concat()
    }

    /// The flags the kernel offered, as the kernel means them: `flags2` counts only with
    /// INIT_EXT and a payload long enough to carry it.
    fn offered(&self) -> InitFlags {
        let low = if self.payload_len >= 16 {
            self.flags
        } else {
            0
        };
        let high = if self.payload_len >= 20 {
            self.flags2
        } else {
            0
        };
        InitFlags::from_wire(low, high)
    }

    fn mount(&self) -> Mount {
        let virtio = self.transport.kind == TransportKind::VirtioFs;
        Mount {
            virtio,
            default_permissions_option: !virtio && self.transport.default_permissions,
            dax_window: virtio && self.transport.dax_window,
            vring_size: if virtio {
                self.transport.max_chain_len
            } else {
                0
            },
            enable_uring: self.enable_uring,
        }
    }
}

/// Flags that no configuration, transport or backend can make the server set.
fn forbidden() -> InitFlags {
    InitFlags::PASSTHROUGH
        | InitFlags::OVER_IO_URING
        | InitFlags::REQUEST_TIMEOUT
        | InitFlags::FILE_OPS
        | InitFlags::INIT_RESERVED
        | InitFlags::from_bits_retain(!InitFlags::all().bits())
}

fn check_case(c: &Case) -> Result<(), TestCaseError> {
    let server = Server::new(
        TestFs::null(c.caps),
        ServerConfig {
            transport: c.transport,
            negotiation: c.config,
        },
    );
    // virtio-fs INIT: 80 writable bytes; /dev/fuse: the reply buffer is larger.
    let space = if c.mount().virtio { 80 } else { 4096 };
    let sent = send_raw(&server, &c.message(), space);
    let Ok(Completion::Replied { len }) = sent.result else {
        return Err(TestCaseError::fail(format!("no reply: {:?}", sent.result)));
    };
    let reply = &sent.reply;
    let hdr = sent.header();
    // Transport invariant: len == bytes written == used length, unique echoed.
    prop_assert_eq!(len, reply.len());
    prop_assert_eq!(hdr.len.get() as usize, reply.len());
    prop_assert_eq!(hdr.unique.get(), c.unique);
    let error = hdr.error.get();
    prop_assert!((-511..=0).contains(&error));

    let offered = c.offered();
    if error != 0 {
        prop_assert_eq!(reply.len(), 16);
        // Refusals only for the documented reasons.
        let acl = InitFlags::POSIX_ACL | InitFlags::DONT_MASK | InitFlags::SETXATTR_EXT;
        let acl_possible = offered.contains(acl)
            && c.caps.flags.contains(acl)
            && c.transport.allowed_flags().contains(acl);
        let legit = c.major < 7
            || (c.major == 7 && c.minor < MIN_KERNEL_MINOR)
            || (c.config.posix_acl == PosixAcl::Always && !acl_possible)
            || c.transport.max_request_size < 12288;
        prop_assert!(legit, "refused without a documented reason: {}", error);
        prop_assert_eq!(server.negotiated(), None);
        return Ok(());
    }
    prop_assert!(c.major >= 7 && (c.major > 7 || c.minor >= MIN_KERNEL_MINOR));

    // The kernel model accepts the reply on every modelled version.
    let mut in_force = Vec::new();
    for k in Kernel::ALL {
        match process_init_reply(k, &c.mount(), c.unique, reply, len) {
            Verdict::Accepted(f) => in_force.push((k, f)),
            other => return Err(TestCaseError::fail(format!("{k:?} refuses: {other:?}"))),
        }
    }

    let out = InitOut::read_from_bytes(sent.body()).unwrap_or_default();
    // Invariant 1: version.
    prop_assert_eq!(out.major.get(), 7);
    if c.major > 7 {
        prop_assert_eq!(out.minor.get(), 46);
        prop_assert_eq!(out.as_bytes()[8..].iter().filter(|&&b| b != 0).count(), 0);
        prop_assert_eq!(server.negotiated(), None);
        return Ok(());
    }
    let minor = c.minor.min(46);
    prop_assert_eq!(out.minor.get(), minor);
    // Reply size: compat::init_out_size, 64 for every minor served.
    prop_assert_eq!(sent.body().len(), fuse_abi::compat::init_out_size(minor));
    prop_assert_eq!(sent.body().len(), 64);

    let (low, high) = (out.flags.get(), out.flags2.get());
    let flags = InitFlags::from_bits_retain(u64::from(low) | (u64::from(high) << 32));
    let ext = InitFlags::INIT_EXT;
    // Invariant 3: INIT_EXT exactly when a high bit is set, flags2 only with INIT_EXT.
    prop_assert_eq!(flags.contains(ext), high != 0);
    if flags.contains(ext) {
        prop_assert!(offered.contains(ext));
    }
    let f = flags.difference(ext);
    // Invariant 2: offered ∩ declared ∩ transport-allowed.
    prop_assert!(
        offered.contains(f),
        "not offered: {:?}",
        f.difference(offered)
    );
    prop_assert!(
        c.caps.flags.contains(f),
        "not declared: {:?}",
        f.difference(c.caps.flags)
    );
    let allowed = c.transport.allowed_flags();
    prop_assert!(
        allowed.contains(f),
        "transport: {:?}",
        f.difference(allowed)
    );
    // Invariant 7: never these.
    prop_assert!(
        !flags.intersects(forbidden()),
        "{:?}",
        flags.intersection(forbidden())
    );
    prop_assert_eq!(out.max_stack_depth.get(), 0);
    prop_assert_eq!(out.request_timeout.get(), 0);
    // Invariant 4: ALLOW_IDMAP.
    if f.contains(InitFlags::ALLOW_IDMAP) {
        let dp = c.transport.kind == TransportKind::VirtioFs
            || c.transport.default_permissions
            || f.contains(InitFlags::POSIX_ACL);
        prop_assert!(dp, "ALLOW_IDMAP without default_permissions");
        prop_assert!(
            c.caps.handles_invalid_uidgid,
            "ALLOW_IDMAP without the uid/gid obligation"
        );
    }
    // Invariant 5: POSIX_ACL.
    if f.contains(InitFlags::POSIX_ACL) {
        prop_assert!(f.contains(InitFlags::DONT_MASK | InitFlags::SETXATTR_EXT));
    }
    // Invariant 6: DAX alignment, pages, write size.
    if f.contains(InitFlags::MAP_ALIGNMENT) {
        prop_assert!(c.transport.dax_window && c.transport.kind == TransportKind::VirtioFs);
        prop_assert!(out.map_alignment.get() <= 21);
    } else {
        prop_assert_eq!(out.map_alignment.get(), 0);
    }
    let pages = if f.contains(InitFlags::MAX_PAGES) {
        let p = u32::from(out.max_pages.get());
        prop_assert!(p >= 1);
        prop_assert!(p.saturating_add(4) <= c.transport.max_chain_len);
        prop_assert!(p <= u32::from(c.caps.max_pages) && p <= u32::from(c.config.max_pages));
        p
    } else {
        prop_assert_eq!(out.max_pages.get(), 0);
        32
    };
    let max_write = out.max_write.get();
    prop_assert!(
        max_write >= 4096 && max_write <= pages * 4096,
        "max_write {}",
        max_write
    );
    prop_assert!(max_write <= c.transport.max_request_size);
    // Invariant 8: extensions only with the parser's format.
    if f.intersects(InitFlags::SECURITY_CTX | InitFlags::CREATE_SUPP_GROUP) {
        prop_assert!(minor >= EXTENSIONS_MINOR);
    }
    // Invariant 9: combinations.
    if f.contains(InitFlags::WRITEBACK_CACHE) {
        prop_assert!(!f.contains(InitFlags::HANDLE_KILLPRIV));
    }
    if f.contains(InitFlags::NO_OPEN_SUPPORT) {
        prop_assert!(!f.contains(InitFlags::ATOMIC_O_TRUNC));
    }
    if f.contains(InitFlags::READDIRPLUS_AUTO) {
        prop_assert!(f.contains(InitFlags::DO_READDIRPLUS));
    }
    // Configuration only removes.
    match c.config.posix_acl {
        PosixAcl::Never => prop_assert!(!f.contains(InitFlags::POSIX_ACL)),
        PosixAcl::Always => prop_assert!(f.contains(InitFlags::POSIX_ACL)),
        PosixAcl::Auto => {}
    }
    if !c.config.writeback_cache || c.config.cache == CachePolicy::Never {
        prop_assert!(!f.contains(InitFlags::WRITEBACK_CACHE));
    }
    if c.config.cache == CachePolicy::Never {
        prop_assert!(!f.contains(InitFlags::CACHE_SYMLINKS));
    }
    match c.config.readdirplus {
        Readdirplus::Never => {
            prop_assert!(!f.intersects(InitFlags::DO_READDIRPLUS | InitFlags::READDIRPLUS_AUTO))
        }
        Readdirplus::Always => prop_assert!(!f.contains(InitFlags::READDIRPLUS_AUTO)),
        Readdirplus::Auto => {}
    }
    // Other fields: readahead only lowers, time_gran valid, unused bytes zero.
    prop_assert!(out.max_readahead.get() <= c.max_readahead);
    let tg = out.time_gran.get();
    prop_assert!(tg == 0 || (1..=1_000_000_000).contains(&tg));
    prop_assert!(out.unused.iter().all(|u| u.get() == 0));
    prop_assert_eq!(&out.as_bytes()[42..], &[0u8; 22][..]);

    // Invariant 15: what we depend on is in force on every kernel.
    for (k, force) in &in_force {
        prop_assert_eq!(force.minor, minor);
        prop_assert_eq!(force.flags, flags);
        prop_assert!(!force.passthrough && !force.uring && force.request_timeout == 0);
        prop_assert_eq!(force.max_write, max_write);
        if *k >= Kernel::V6_12 {
            prop_assert_eq!(force.idmap, f.contains(InitFlags::ALLOW_IDMAP));
        }
        if force.idmap || f.contains(InitFlags::POSIX_ACL) {
            prop_assert!(force.default_permissions);
        }
    }
    // The server's state is the reply.
    prop_assert_eq!(server.negotiated(), Some((minor, flags)));
    Ok(())
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: cases(),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn every_init_reply_is_accepted_and_holds_the_invariants(c in case()) {
        check_case(&c)?;
    }
}

/// The seed failure of the project, on real kernel offers: a backend that declares
/// ALLOW_IDMAP (and copes with invalid ids) on a `/dev/fuse` mount without
/// `default_permissions` must not get it, and the kernel model proves why.
#[test]
fn seed_failure_allow_idmap_on_dev_fuse() {
    let caps = Capabilities::new()
        .with_flags(InitFlags::ALLOW_IDMAP)
        .with_invalid_uidgid_handling();
    for (dp, expect_idmap) in [(false, false), (true, true)] {
        let c = Case {
            major: 7,
            minor: Kernel::V6_18.minor(),
            flags: 0x73ff_fffb,
            flags2: 0x5fd,
            max_readahead: 131_072,
            payload_len: 64,
            unique: 2,
            caps,
            transport: TransportFacts::dev_fuse(dp, 1 << 20),
            config: NegotiationConfig::default(),
            enable_uring: false,
        };
        let check = check_case(&c);
        assert!(check.is_ok(), "{check:?}");
        assert_eq!(
            c.mount().default_permissions_option,
            dp,
            "the model mount follows the transport"
        );
        let idmap = crate::negotiate::negotiate(
            &crate::negotiate::KernelOffer::parse(&c.message()[40..]).unwrap_or_default(),
            &caps,
            &c.transport,
            &c.config,
        )
        .map(|r| r.out().flags2.get() & (1 << 8) != 0);
        assert_eq!(idmap, Ok(expect_idmap));
    }
}
