//! Unit tests of the negotiation function.

use super::*;

fn offer(minor: u32, flags: InitFlags) -> KernelOffer {
    let (f, f2) = flags.union(InitFlags::INIT_EXT).to_wire();
    KernelOffer {
        major: 7,
        minor,
        max_readahead: 131072,
        flags: InitFlags::from_wire(f, f2),
    }
}

fn accepted(r: Result<InitReply, NegotiationError>) -> Negotiation {
    match r {
        Ok(InitReply::Accepted(n)) => n,
        other => panic!("not accepted: {other:?}"),
    }
}

#[test]
fn nothing_is_on_by_default() {
    let n = accepted(negotiate(
        &offer(46, InitFlags::all()),
        &Capabilities::new(),
        &TransportFacts::default(),
        &NegotiationConfig::default(),
    ));
    assert_eq!(n.negotiated.flags, InitFlags::empty());
    assert_eq!((n.out.flags.get(), n.out.flags2.get()), (0, 0));
    assert_eq!(n.reply_len, 64);
}

#[test]
fn idmap_needs_default_permissions_on_dev_fuse() {
    let caps = Capabilities::new()
        .with_flags(InitFlags::ALLOW_IDMAP)
        .with_invalid_uidgid_handling();
    let cfg = NegotiationConfig::default();
    let k = offer(45, InitFlags::all());
    let without = accepted(negotiate(
        &k,
        &caps,
        &TransportFacts::dev_fuse(false, 1 << 20),
        &cfg,
    ));
    assert!(!without.negotiated.flags.contains(InitFlags::ALLOW_IDMAP));
    let with = accepted(negotiate(
        &k,
        &caps,
        &TransportFacts::dev_fuse(true, 1 << 20),
        &cfg,
    ));
    assert!(with.negotiated.flags.contains(InitFlags::ALLOW_IDMAP));
    let virtio = accepted(negotiate(&k, &caps, &TransportFacts::virtio_fs(128), &cfg));
    assert!(
        virtio
            .negotiated
            .flags
            .contains(InitFlags::ALLOW_IDMAP | InitFlags::INIT_EXT)
    );
}

#[test]
fn old_minor_is_refused_and_new_major_gets_version_only() {
    let caps = Capabilities::new();
    let t = TransportFacts::default();
    let c = NegotiationConfig::default();
    assert_eq!(
        negotiate(&offer(22, InitFlags::empty()), &caps, &t, &c),
        Err(NegotiationError::MinorTooOld { minor: 22 })
    );
    let mut k = offer(46, InitFlags::empty());
    k.major = 8;
    let Ok(InitReply::VersionOnly(out)) = negotiate(&k, &caps, &t, &c) else {
        panic!()
    };
    assert_eq!((out.major.get(), out.minor.get()), (7, 46));
}

#[test]
fn parse_accepts_short_payloads_and_gates_flags2() {
    assert!(KernelOffer::parse(&[7, 0, 0]).is_err());
    let k = KernelOffer::parse(&[7, 0, 0, 0, 23, 0, 0, 0]).unwrap_or_default();
    assert_eq!((k.major, k.minor, k.flags), (7, 23, InitFlags::empty()));
    let mut p = [0u8; 20];
    p[0] = 7;
    p[4] = 45;
    p[16] = 1; // SECURITY_CTX in flags2, but no INIT_EXT
    assert_eq!(
        KernelOffer::parse(&p).map(|k| k.flags),
        Ok(InitFlags::empty())
    );
    p[15] = 0x40; // INIT_EXT
    assert_eq!(
        KernelOffer::parse(&p).map(|k| k.flags),
        Ok(InitFlags::INIT_EXT | InitFlags::SECURITY_CTX)
    );
}

#[test]
fn max_pages_respects_the_chain_length() {
    let caps = Capabilities::new()
        .with_flags(InitFlags::MAX_PAGES)
        .with_max_write(1 << 20, 256);
    let n = accepted(negotiate(
        &offer(46, InitFlags::all()),
        &caps,
        &TransportFacts::virtio_fs(128),
        &NegotiationConfig::default(),
    ));
    assert_eq!(n.out.max_pages.get(), 124);
    assert_eq!(n.out.max_write.get(), 124 * 4096);
}
