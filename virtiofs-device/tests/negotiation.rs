//! FUSE_INIT negotiation as the device composes it: every real `PassthroughFs` configuration
//! the daemon's options can produce, the virtio-fs transport facts of a device
//! ([`DeviceConfig::server_config`]) and the operator's policy, against arbitrary kernel offers.
//! Each reply must hold the invariants of `DESIGN.md` ("FUSE_INIT negotiation: the
//! invariants").
#![cfg(target_os = "linux")]
#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

use std::sync::OnceLock;

use fuse_abi::InitFlags;
use fuse_server::negotiate::{InitReply, KernelOffer, SERVER_MINOR, negotiate};
use fuse_server::{Capabilities, FileSystem, NegotiationConfig, PosixAcl, ServerConfig};
use passthrough_linux::{CachePolicy, Config, PassthroughFs};
use proptest::prelude::*;
use virtiofs_device::DeviceConfig;

/// One backend configuration and the capabilities the backend declares for it.
#[derive(Debug, Clone)]
struct Backend {
    label: String,
    caps: Capabilities,
    acl: bool,
    writeback: bool,
}

/// Every valid combination of the options that change what the backend declares.
fn backends() -> &'static [Backend] {
    static BACKENDS: OnceLock<Vec<Backend>> = OnceLock::new();
    BACKENDS.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let mut out = Vec::new();
        for cache in [
            CachePolicy::Never,
            CachePolicy::Metadata,
            CachePolicy::Auto,
            CachePolicy::Always,
        ] {
            for (xattr, acl) in [(false, false), (true, false), (true, true)] {
                for writeback in [false, true] {
                    for readonly in [false, true] {
                        for submounts in [false, true] {
                            let config = Config::builder(dir.path())
                                .cache(cache)
                                .xattr(xattr)
                                .posix_acl(acl)
                                .writeback(writeback)
                                .readonly(readonly)
                                .announce_submounts(submounts)
                                .build();
                            let Ok(config) = config else { continue };
                            let fs = PassthroughFs::new(config).unwrap();
                            out.push(Backend {
                                label: format!(
                                    "cache={cache:?} xattr={xattr} acl={acl} writeback={writeback} \
                                     readonly={readonly} submounts={submounts}"
                                ),
                                caps: fs.capabilities(),
                                acl,
                                writeback,
                            });
                        }
                    }
                }
            }
        }
        assert!(out.len() >= 64, "{} configurations", out.len());
        out
    })
}

/// The daemon's mapping of its options onto the negotiation policy.
fn policy(backend: &Backend, acl_mode: PosixAcl) -> NegotiationConfig {
    NegotiationConfig {
        posix_acl: if backend.acl {
            acl_mode
        } else {
            PosixAcl::Never
        },
        writeback_cache: backend.writeback,
        ..NegotiationConfig::default()
    }
}

fn check(
    backend: &Backend,
    server: &ServerConfig,
    queue_size: u16,
    offer: &KernelOffer,
) -> Result<(), TestCaseError> {
    let reply = negotiate(offer, &backend.caps, &server.transport, &server.negotiation);
    let reply = match reply {
        // Refusals are fine (old protocol, posix_acl=always unmet); they carry an errno.
        Err(e) => {
            prop_assert!(e.errno().raw() > 0);
            return Ok(());
        }
        Ok(InitReply::VersionOnly(out)) => {
            prop_assert!(offer.major > 7);
            prop_assert_eq!((out.major.get(), out.minor.get()), (7, SERVER_MINOR));
            return Ok(());
        }
        Ok(InitReply::Accepted(n)) => n,
    };
    let out = reply.out;
    let flags = InitFlags::from_wire(out.flags.get(), out.flags2.get());
    let ctx = &backend.label;

    // 1. Version.
    prop_assert_eq!(out.major.get(), 7);
    prop_assert_eq!(out.minor.get(), offer.minor.min(SERVER_MINOR));
    // 2. Offered ∩ declared ∩ allowed by virtio-fs (INIT_EXT is framing).
    let payload = flags.difference(InitFlags::INIT_EXT);
    let allowed = offer
        .flags
        .intersection(backend.caps.flags)
        .intersection(server.transport.allowed_flags());
    prop_assert!(
        allowed.contains(payload),
        "{ctx}: {payload:?} not within {allowed:?}"
    );
    // 3. Bits ≥ 32 need INIT_EXT.
    if (payload.bits() >> 32) != 0 {
        prop_assert!(flags.contains(InitFlags::INIT_EXT), "{ctx}");
    }
    // 4. ALLOW_IDMAP: virtio-fs guarantees default_permissions; the backend must cope.
    if flags.contains(InitFlags::ALLOW_IDMAP) {
        prop_assert!(backend.caps.handles_invalid_uidgid, "{ctx}");
    }
    // 5. POSIX_ACL with its companions.
    if flags.contains(InitFlags::POSIX_ACL) {
        prop_assert!(
            flags.contains(InitFlags::DONT_MASK | InitFlags::SETXATTR_EXT),
            "{ctx}"
        );
        prop_assert!(backend.acl, "{ctx}");
    }
    // 6. No DAX window: no MAP_ALIGNMENT; page and write limits fit the queue.
    prop_assert!(!flags.contains(InitFlags::MAP_ALIGNMENT), "{ctx}");
    prop_assert!(!flags.contains(InitFlags::HAS_INODE_DAX), "{ctx}");
    let pages = if flags.contains(InitFlags::MAX_PAGES) {
        let pages = out.max_pages.get();
        prop_assert!(pages >= 1, "{ctx}");
        prop_assert!(
            u32::from(pages) + 4 <= u32::from(queue_size),
            "{ctx}: {pages} pages"
        );
        u32::from(pages)
    } else {
        32
    };
    let max_write = out.max_write.get();
    prop_assert!(
        max_write >= 4096 && max_write <= pages * 4096,
        "{ctx}: max_write {max_write}"
    );
    // 7. Never what virtio-fs cannot honour.
    for never in [
        InitFlags::PASSTHROUGH,
        InitFlags::OVER_IO_URING,
        InitFlags::REQUEST_TIMEOUT,
        InitFlags::INIT_RESERVED,
    ] {
        prop_assert!(!flags.contains(never), "{ctx}: {never:?}");
    }
    // 9. Combinations the kernel rejects or misreads.
    if flags.contains(InitFlags::WRITEBACK_CACHE) {
        prop_assert!(!flags.contains(InitFlags::HANDLE_KILLPRIV), "{ctx}");
        prop_assert!(backend.writeback, "{ctx}");
    }
    if flags.contains(InitFlags::NO_OPEN_SUPPORT) {
        prop_assert!(!flags.contains(InitFlags::ATOMIC_O_TRUNC), "{ctx}");
    }
    if flags.contains(InitFlags::READDIRPLUS_AUTO) {
        prop_assert!(flags.contains(InitFlags::DO_READDIRPLUS), "{ctx}");
    }
    Ok(())
}

fn offers() -> impl Strategy<Value = KernelOffer> {
    (6u32..=8, 0u32..=99, any::<u64>(), any::<u32>()).prop_map(|(major, minor, bits, ra)| {
        KernelOffer {
            major,
            minor,
            max_readahead: ra,
            flags: InitFlags::from_bits_retain(bits),
        }
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4096))]

    #[test]
    fn every_backend_configuration_holds_the_invariants(
        backend in 0..backends().len(),
        acl_always in any::<bool>(),
        queue_size in prop::sample::select(vec![64u16, 128, 256, 1024, 32768]),
        offer in offers(),
    ) {
        let backend = &backends()[backend];
        let acl_mode = if acl_always { PosixAcl::Always } else { PosixAcl::Auto };
        let device = DeviceConfig::builder("p").queue_size(queue_size).build().unwrap();
        let server = device.server_config(policy(backend, acl_mode));
        check(backend, &server, queue_size, &offer)?;
    }
}

/// What Linux 6.12 offers on virtio-fs is accepted for every configuration, with SUBMOUNTS
/// exactly when the backend announces submounts.
#[test]
fn a_real_kernel_offer_is_accepted_everywhere() {
    let offer = KernelOffer {
        major: 7,
        minor: 41,
        max_readahead: 128 * 1024,
        flags: InitFlags::all()
            .difference(InitFlags::INIT_RESERVED)
            .difference(InitFlags::REQUEST_TIMEOUT),
    };
    for backend in backends() {
        let device = DeviceConfig::builder("p").build().unwrap();
        let server = device.server_config(policy(backend, PosixAcl::Auto));
        let reply = negotiate(
            &offer,
            &backend.caps,
            &server.transport,
            &server.negotiation,
        )
        .unwrap_or_else(|e| panic!("{}: {e}", backend.label));
        let InitReply::Accepted(n) = reply else {
            panic!("{}: version-only reply", backend.label)
        };
        let flags = InitFlags::from_wire(n.out.flags.get(), n.out.flags2.get());
        assert_eq!(
            flags.contains(InitFlags::SUBMOUNTS),
            backend.caps.flags.contains(InitFlags::SUBMOUNTS),
            "{}",
            backend.label
        );
        check(backend, &server, 1024, &offer).unwrap();
    }
}
