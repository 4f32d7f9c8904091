//! SECURITY_CTX: the label a guest kernel sends with a creation is stored only as a
//! `security.*` attribute, through the same name handling as SETXATTR.
#![cfg(target_os = "linux")]
#![allow(clippy::unwrap_used)]

mod common;

use common::{Fixture, ctx, name, root};
use fuse_abi::{Errno, InitFlags};
use fuse_server::{CreateArgs, CreateContext, FileSystem, NodeId, OpenArgs, SecurityContext};
use passthrough_macos::{Config, Host};

const LABEL: &[u8] = b"system_u:object_r:guest_t:s0\0";

fn labelled(label_name: &'static [u8]) -> CreateContext<'static> {
    CreateContext {
        security_ctx: Some(SecurityContext {
            name: label_name,
            value: LABEL,
        }),
        ..CreateContext::default()
    }
}

fn fixture(security_label: bool, xattr: bool) -> Fixture {
    Fixture::with(|c| Config {
        security_label,
        xattr,
        ..c
    })
}

/// CREATE and MKDIR of `n`/`n.d` with the label named `label_name`: both succeed.
fn create_both(fx: &Fixture, n: &str, label_name: &'static [u8]) -> (NodeId, NodeId) {
    let cctx = labelled(label_name);
    let (e, _) = fx
        .fs
        .create(
            &ctx(),
            &cctx,
            root(),
            &CreateArgs::new(name(n), 0o644, OpenArgs::new(2)),
        )
        .unwrap();
    let d = fx
        .fs
        .mkdir(&ctx(), &cctx, root(), name(&format!("{n}.d")), 0o755)
        .unwrap();
    (e.nodeid, d.nodeid)
}

#[test]
fn a_security_label_is_stored_under_its_name() {
    let fx = fixture(true, true);
    assert!(fx.fs.capabilities().flags.contains(InitFlags::SECURITY_CTX));
    let (f, d) = create_both(&fx, "f", b"security.selinux\0");
    for node in [f, d] {
        assert_eq!(fx.getxattr(node, "security.selinux").unwrap(), LABEL);
    }
    // On the host it is the Darwin name, translated like any guest attribute.
    let mut buf = [0u8; 64];
    let node = passthrough_macos::Node::Child(fx.root, b"f");
    let len = fx
        .fs
        .host()
        .getxattr(node, c"security.selinux", &mut buf, 1)
        .unwrap();
    assert_eq!(&buf[..len], LABEL);
}

#[test]
fn a_label_without_negotiated_security_ctx_is_ignored() {
    let fx = fixture(true, true);
    // A kernel (or a hostile guest) that did not negotiate SECURITY_CTX still sends one.
    fx.negotiate(InitFlags::empty());
    let (f, d) = create_both(&fx, "f", b"security.selinux\0");
    for node in [f, d] {
        assert_eq!(
            fx.getxattr(node, "security.selinux").unwrap_err(),
            Errno::ENODATA
        );
    }
}

#[test]
fn labels_outside_security_are_ignored_and_the_creation_succeeds() {
    let fx = fixture(true, true);
    for (i, label) in [
        &b"user.evil\0"[..],
        b"trusted.overlay.opaque",
        b"user.containers.override_stat",
        b"com.apple.quarantine",
        b"security.",
        b"",
    ]
    .into_iter()
    .enumerate()
    {
        let label: &'static [u8] = Box::leak(label.to_vec().into_boxed_slice());
        let (f, _) = create_both(&fx, &format!("f{i}"), label);
        let raw = std::str::from_utf8(label.strip_suffix(b"\0").unwrap_or(label)).unwrap();
        if !raw.is_empty() && !raw.starts_with("user.containers") {
            assert!(fx.getxattr(f, raw).is_err(), "{raw} was set");
        }
        // The override (the guest's mode) is intact.
        assert_eq!(fx.getattr(f).unwrap().mode & 0o7777, 0o644, "{raw}");
        assert!(fx.listxattr(f).is_empty(), "{raw}: {:?}", fx.listxattr(f));
    }
}

#[test]
fn labels_are_ignored_unless_configured_with_xattrs() {
    for (security_label, xattr) in [(false, true), (true, false)] {
        let fx = fixture(security_label, xattr);
        assert!(!fx.fs.capabilities().flags.contains(InitFlags::SECURITY_CTX));
        let (f, _) = create_both(&fx, "f", b"security.selinux\0");
        if xattr {
            assert_eq!(
                fx.getxattr(f, "security.selinux").unwrap_err(),
                Errno::ENODATA
            );
        }
    }
}
