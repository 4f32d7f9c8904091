//! Extended attributes, the name map, and POSIX ACLs.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

mod common;

use std::os::unix::fs::PermissionsExt;

use common::*;
use fuse_abi::{Errno, InitFlags, SetxattrFlags};
use fuse_server::{FileSystem, NodeId, SetAttr, SetxattrArgs, XattrReply};
use passthrough_linux::XattrMap;

fn file(f: &Fixture) -> NodeId {
    std::fs::write(f.host("f"), b"").unwrap();
    f.lookup(ROOT, "f").unwrap().nodeid
}

fn list(f: &Fixture, nodeid: NodeId) -> Vec<String> {
    let XattrReply::Size(n) = f.fs.listxattr(&ctx(), nodeid, &mut []).unwrap() else {
        panic!()
    };
    if n == 0 {
        return Vec::new();
    }
    let mut buf = vec![0u8; n as usize];
    let XattrReply::Data(m) = f.fs.listxattr(&ctx(), nodeid, &mut buf).unwrap() else {
        panic!()
    };
    assert_eq!(m, n as usize);
    buf[..m]
        .split(|&b| b == 0)
        .filter(|s| !s.is_empty())
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .collect()
}

#[test]
fn set_get_list_remove_roundtrip() {
    let f = Fixture::new();
    let n = file(&f);
    f.fs.setxattr(&ctx(), n, &SetxattrArgs::new(c"user.k", b"value"))
        .unwrap();
    assert_eq!(
        f.fs.getxattr(&ctx(), n, c"user.k", &mut []).unwrap(),
        XattrReply::Size(5)
    );
    let mut buf = [0u8; 16];
    assert_eq!(
        f.fs.getxattr(&ctx(), n, c"user.k", &mut buf).unwrap(),
        XattrReply::Data(5)
    );
    assert_eq!(&buf[..5], b"value");
    assert!(list(&f, n).contains(&"user.k".to_owned()));
    f.fs.removexattr(&ctx(), n, c"user.k").unwrap();
    assert_eq!(
        f.fs.getxattr(&ctx(), n, c"user.k", &mut buf).unwrap_err(),
        Errno::ENODATA
    );
}

#[test]
fn getxattr_small_buffer_is_erange() {
    let f = Fixture::new();
    let n = file(&f);
    f.fs.setxattr(&ctx(), n, &SetxattrArgs::new(c"user.k", b"value"))
        .unwrap();
    assert_eq!(
        f.fs.getxattr(&ctx(), n, c"user.k", &mut [0u8; 2])
            .unwrap_err(),
        Errno::ERANGE
    );
}

#[test]
fn setxattr_create_on_existing_is_eexist() {
    let f = Fixture::new();
    let n = file(&f);
    f.fs.setxattr(&ctx(), n, &SetxattrArgs::new(c"user.k", b"1"))
        .unwrap();
    let r = f.fs.setxattr(
        &ctx(),
        n,
        &SetxattrArgs::new(c"user.k", b"2").with_flags(libc::XATTR_CREATE as u32),
    );
    assert_eq!(r.unwrap_err(), Errno::EEXIST);
}

/// Without `--xattr` every xattr request is ENOSYS: the guest kernel then stops sending them
/// for the connection (EOPNOTSUPP would cost a GETXATTR before every WRITE).
#[test]
fn xattr_disabled_is_enosys() {
    let f = Fixture::with(|b| b.xattr(false));
    let n = file(&f);
    let r =
        f.fs.setxattr(&ctx(), n, &SetxattrArgs::new(c"user.k", b"1"));
    assert_eq!(r.unwrap_err(), Errno::ENOSYS);
    assert_eq!(
        f.fs.getxattr(&ctx(), n, c"security.capability", &mut [])
            .unwrap_err(),
        Errno::ENOSYS
    );
    assert_eq!(
        f.fs.listxattr(&ctx(), n, &mut []).unwrap_err(),
        Errno::ENOSYS
    );
    assert_eq!(
        f.fs.removexattr(&ctx(), n, c"user.k").unwrap_err(),
        Errno::ENOSYS
    );
}

#[test]
fn acl_names_refused_and_hidden_without_posix_acl() {
    let f = Fixture::new();
    let n = file(&f);
    // An ACL set on the host by someone else: the guest neither sees nor reads it.
    let acl = acl_with_named_user(1000);
    xattr_set_host(&f.host("f"), "system.posix_acl_access", &acl);
    assert!(xattr_get_host(&f.host("f"), "system.posix_acl_access").is_some());
    let r =
        f.fs.getxattr(&ctx(), n, c"system.posix_acl_access", &mut []);
    assert_eq!(r.unwrap_err(), Errno::EOPNOTSUPP);
    assert!(
        !list(&f, n)
            .iter()
            .any(|s| s.starts_with("system.posix_acl"))
    );
}

#[test]
fn posix_acl_set_updates_mode() {
    let f = Fixture::with(|b| b.posix_acl(true));
    let n = file(&f);
    // user::rw- group::--- other::--- as an xattr value: the host derives mode 0600.
    let acl = acl_mode_entries(0o6, 0o0, 0o0);
    f.fs.setxattr(
        &ctx(),
        n,
        &SetxattrArgs::new(c"system.posix_acl_access", &acl),
    )
    .unwrap();
    assert_eq!(
        std::fs::metadata(f.host("f")).unwrap().permissions().mode() & 0o777,
        0o600
    );
}

#[test]
fn posix_acl_kill_sgid_clears_sgid() {
    let f = Fixture::with(|b| b.posix_acl(true));
    let n = file(&f);
    std::fs::set_permissions(f.host("f"), std::fs::Permissions::from_mode(0o2755)).unwrap();
    let acl = acl_mode_entries(0o7, 0o5, 0o5);
    f.fs.setxattr(
        &ctx(),
        n,
        &SetxattrArgs::new(c"system.posix_acl_access", &acl)
            .with_setxattr_flags(SetxattrFlags::ACL_KILL_SGID),
    )
    .unwrap();
    assert_eq!(
        std::fs::metadata(f.host("f")).unwrap().permissions().mode() & 0o7777,
        0o755
    );
}

#[test]
fn default_acl_is_inherited_by_host_kernel() {
    let f = Fixture::with(|b| b.posix_acl(true));
    let d = f.mkdir(ROOT, "d").unwrap();
    let acl = acl_mode_entries(0o7, 0o7, 0o0);
    f.fs.setxattr(
        &ctx(),
        d.nodeid,
        &SetxattrArgs::new(c"system.posix_acl_default", &acl),
    )
    .unwrap();
    // With DONT_MASK the guest's umask (022) is ignored in favour of the default ACL.
    let cc = fuse_server::CreateContext {
        umask: 0o022,
        ..Default::default()
    };
    let e =
        f.fs.mkdir(&ctx(), &cc, d.nodeid, name("sub"), 0o777)
            .unwrap();
    assert_eq!(e.attr.mode & 0o777, 0o770);
}

#[test]
fn xattrmap_prefixes_on_host_and_strips_for_guest() {
    let map = XattrMap::parse(":prefix:all:trusted.:user.virtiofs.: :ok:all:::").unwrap();
    let f = Fixture::with(|b| b.xattrmap(map));
    let n = file(&f);
    f.fs.setxattr(&ctx(), n, &SetxattrArgs::new(c"trusted.x", b"1"))
        .unwrap();
    assert_eq!(
        xattr_get_host(&f.host("f"), "user.virtiofs.trusted.x"),
        Some(b"1".to_vec())
    );
    assert!(list(&f, n).contains(&"trusted.x".to_owned()));
}

#[test]
fn xattrmap_remapped_capability_cleared_on_write() {
    let map = XattrMap::parse(":prefix:all:security.:user.virtiofs.: :ok:all:::").unwrap();
    let f = Fixture::with(|b| b.xattrmap(map));
    let (e, fh) = f.create(ROOT, "f", 0o755, libc::O_RDWR as u32).unwrap();
    f.fs.setxattr(
        &ctx(),
        e.nodeid,
        &SetxattrArgs::new(c"security.capability", b"caps"),
    )
    .unwrap();
    assert!(xattr_get_host(&f.host("f"), "user.virtiofs.security.capability").is_some());
    f.write(e.nodeid, fh, 0, b"x").unwrap();
    assert_eq!(
        xattr_get_host(&f.host("f"), "user.virtiofs.security.capability"),
        None
    );
}

/// The default map: the guest's trusted.* and security.capability live under user.virtiofs.
/// on the host, the guest gets its own names back. Failed before the default map (EPERM).
#[test]
fn default_map_stores_trusted_and_capability_under_user_virtiofs() {
    let f = Fixture::new();
    let n = file(&f);
    for (guest, host) in [
        (
            c"trusted.overlay.opaque",
            "user.virtiofs.trusted.overlay.opaque",
        ),
        (c"security.capability", "user.virtiofs.security.capability"),
    ] {
        f.fs.setxattr(&ctx(), n, &SetxattrArgs::new(guest, b"v1"))
            .unwrap();
        assert_eq!(xattr_get_host(&f.host("f"), host), Some(b"v1".to_vec()));
        let mut buf = [0u8; 8];
        assert_eq!(
            f.fs.getxattr(&ctx(), n, guest, &mut buf).unwrap(),
            XattrReply::Data(2)
        );
        assert_eq!(&buf[..2], b"v1");
    }
    // Never under the real names (readable by anyone for security.*, by root for trusted.*).
    assert_eq!(xattr_get_host(&f.host("f"), "security.capability"), None);
    f.fs.setxattr(&ctx(), n, &SetxattrArgs::new(c"user.k", b"1"))
        .unwrap();
    let mut names = list(&f, n);
    names.sort();
    assert_eq!(
        names,
        ["security.capability", "trusted.overlay.opaque", "user.k"]
    );
    f.fs.removexattr(&ctx(), n, c"trusted.overlay.opaque")
        .unwrap();
    f.fs.removexattr(&ctx(), n, c"security.capability").unwrap();
    assert_eq!(
        xattr_get_host(&f.host("f"), "user.virtiofs.trusted.overlay.opaque"),
        None
    );
    assert_eq!(
        xattr_get_host(&f.host("f"), "user.virtiofs.security.capability"),
        None
    );
}

/// The guest never names user.virtiofs.* itself: an unprivileged guest user could otherwise
/// forge the capabilities of its own file. Failed before the default map (the set succeeded).
#[test]
fn default_map_refuses_guest_user_virtiofs_names() {
    let f = Fixture::new();
    let n = file(&f);
    for name in [
        c"user.virtiofs.security.capability",
        c"user.virtiofs.trusted.x",
        c"user.virtiofs.x",
    ] {
        let r = f.fs.setxattr(&ctx(), n, &SetxattrArgs::new(name, b"caps"));
        assert_eq!(r.unwrap_err(), Errno::EPERM, "{name:?}");
        assert_eq!(
            f.fs.getxattr(&ctx(), n, name, &mut []).unwrap_err(),
            Errno::EPERM
        );
        assert_eq!(f.fs.removexattr(&ctx(), n, name).unwrap_err(), Errno::EPERM);
    }
    assert_eq!(
        xattr_get_host(&f.host("f"), "user.virtiofs.security.capability"),
        None
    );
    // Set on the host under the prefix but produced by no rule: hidden from the guest.
    xattr_set_host(&f.host("f"), "user.virtiofs.x", b"1");
    xattr_set_host(&f.host("f"), "user.virtiofs.user.virtiofs.x", b"1");
    xattr_set_host(&f.host("f"), "user.virtiofs.trusted.t", b"1");
    assert_eq!(list(&f, n), ["trusted.t"]);
}

/// The host kernel does not clear the remapped capability: the backend does, on WRITE and on
/// SETATTR of size or owner. Failed before the default map (no capability could be set).
#[test]
fn default_map_capability_cleared_on_write_truncate_and_chown() {
    let f = Fixture::new();
    let (e, fh) = f.create(ROOT, "f", 0o755, libc::O_RDWR as u32).unwrap();
    let has_caps = || xattr_get_host(&f.host("f"), "user.virtiofs.security.capability").is_some();
    let set_caps = || {
        f.fs.setxattr(
            &ctx(),
            e.nodeid,
            &SetxattrArgs::new(c"security.capability", b"caps"),
        )
        .unwrap();
        assert!(has_caps());
    };
    set_caps();
    f.write(e.nodeid, fh, 0, b"x").unwrap();
    assert!(!has_caps(), "write");
    set_caps();
    let truncate = SetAttr {
        size: Some(0),
        ..Default::default()
    };
    f.fs.setattr(&ctx(), e.nodeid, &truncate).unwrap();
    assert!(!has_caps(), "truncate");
    set_caps();
    // A chown to the owner it has (allowed without privilege) counts.
    let meta = std::fs::metadata(f.host("f")).unwrap();
    let chown = SetAttr {
        uid: Some(std::os::unix::fs::MetadataExt::uid(&meta)),
        ..Default::default()
    };
    f.fs.setattr(&ctx(), e.nodeid, &chown).unwrap();
    assert!(!has_caps(), "chown");
    // A mode change or a time change does not.
    set_caps();
    let chmod = SetAttr {
        mode: Some(0o750),
        ..Default::default()
    };
    f.fs.setattr(&ctx(), e.nodeid, &chmod).unwrap();
    assert!(has_caps(), "chmod");
}

/// One `removexattr` per inode, not per WRITE: once a WRITE found the remapped capability
/// absent, later WRITEs do not look for it until the guest sets it again. A host process that
/// writes the remapped name meanwhile is not seen (it could as well write it after the WRITE).
/// Failed before, when every WRITE removed it (a system call per WRITE).
#[test]
fn default_map_capability_looked_for_once_per_inode() {
    let f = Fixture::new();
    let (e, fh) = f.create(ROOT, "f", 0o755, libc::O_RDWR as u32).unwrap();
    let has_caps = || xattr_get_host(&f.host("f"), "user.virtiofs.security.capability").is_some();
    f.write(e.nodeid, fh, 0, b"x").unwrap();
    xattr_set_host(&f.host("f"), "user.virtiofs.security.capability", b"caps");
    f.write(e.nodeid, fh, 1, b"y").unwrap();
    assert!(has_caps(), "a clean inode is not looked at again");
    f.fs.setxattr(
        &ctx(),
        e.nodeid,
        &SetxattrArgs::new(c"security.capability", b"caps"),
    )
    .unwrap();
    f.write(e.nodeid, fh, 2, b"z").unwrap();
    assert!(!has_caps(), "the guest's set marks it again");
}

/// user.* attributes are EPERM to set and ENODATA to get on a symlink (Linux): so are the
/// guest's trusted.* and security.capability there under the default map.
#[test]
fn default_map_on_a_symlink_is_eperm_to_set_and_enodata_to_get() {
    let f = Fixture::new();
    std::os::unix::fs::symlink("target", f.host("l")).unwrap();
    let l = f.lookup(ROOT, "l").unwrap().nodeid;
    for name in [c"trusted.overlay.origin", c"security.capability"] {
        let r = f.fs.setxattr(&ctx(), l, &SetxattrArgs::new(name, b"v"));
        assert_eq!(r.unwrap_err(), Errno::EPERM, "{name:?}");
        assert_eq!(
            f.fs.getxattr(&ctx(), l, name, &mut []).unwrap_err(),
            Errno::ENODATA
        );
    }
}

#[test]
fn readonly_refuses_setxattr_and_writes() {
    let f = Fixture::with(|b| b.readonly(true));
    let n = file(&f);
    let r =
        f.fs.setxattr(&ctx(), n, &SetxattrArgs::new(c"user.k", b"1"));
    assert_eq!(r.unwrap_err(), Errno::EROFS);
    assert_eq!(f.open(n, libc::O_RDWR as u32).unwrap_err(), Errno::EROFS);
    assert_eq!(f.mkdir(ROOT, "d").unwrap_err(), Errno::EROFS);
    assert!(f.open(n, libc::O_RDONLY as u32).is_ok());
}

/// A POSIX ACL xattr value with just the three base entries.
fn acl_mode_entries(user: u16, group: u16, other: u16) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&2u32.to_le_bytes()); // POSIX_ACL_XATTR_VERSION
    for (tag, perm) in [(0x01u16, user), (0x04, group), (0x20, other)] {
        v.extend_from_slice(&tag.to_le_bytes());
        v.extend_from_slice(&perm.to_le_bytes());
        v.extend_from_slice(&u32::MAX.to_le_bytes());
    }
    v
}

/// A non-minimal ACL (the host stores it as an xattr): base entries, user `uid`, a mask.
fn acl_with_named_user(uid: u32) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&2u32.to_le_bytes());
    for (tag, perm, id) in [
        (0x01u16, 6u16, u32::MAX),
        (0x02, 4, uid),
        (0x04, 4, u32::MAX),
        (0x10, 4, u32::MAX),
        (0x20, 4, u32::MAX),
    ] {
        v.extend_from_slice(&tag.to_le_bytes());
        v.extend_from_slice(&perm.to_le_bytes());
        v.extend_from_slice(&id.to_le_bytes());
    }
    v
}

fn xattr_set_host(p: &std::path::Path, name: &str, value: &[u8]) {
    let st = std::process::Command::new("setfattr")
        .arg("-h")
        .arg("--version")
        .output();
    let _ = st;
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            "import os,sys; os.setxattr(sys.argv[1], sys.argv[2], bytes.fromhex(sys.argv[3]))",
        ])
        .arg(p)
        .arg(name)
        .arg(value.iter().map(|b| format!("{b:02x}")).collect::<String>())
        .status()
        .unwrap();
    assert!(out.success());
}

fn xattr_get_host(p: &std::path::Path, name: &str) -> Option<Vec<u8>> {
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            "import os,sys; print(os.getxattr(sys.argv[1], sys.argv[2]).hex())",
        ])
        .arg(p)
        .arg(name)
        .output()
        .unwrap();
    if !out.status.success() {
        return None;
    }
    let hex = String::from_utf8(out.stdout).unwrap();
    let hex = hex.trim();
    Some(
        (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect(),
    )
}

fn with_ctx<'a>(name: &'a [u8], value: &'a [u8]) -> fuse_server::CreateContext<'a> {
    fuse_server::CreateContext {
        security_ctx: Some(fuse_server::SecurityContext { name, value }),
        ..Default::default()
    }
}

#[test]
#[ignore = "needs root (trusted.* and security.* xattrs on the host)"]
fn security_ctx_outside_security_namespace_is_refused_and_sets_nothing() {
    needs_root!();
    let f = Fixture::with(|b| b.security_label(true));
    for name in [
        &b"trusted.overlay.opaque"[..],
        b"user.x",
        b"security.",
        b"system.x",
    ] {
        let cc = with_ctx(name, b"y");
        let r = f.fs.mkdir(&ctx(), &cc, ROOT, common::name("d"), 0o755);
        assert_eq!(r.unwrap_err(), fuse_abi::Errno::EPERM, "{name:?}");
        assert!(!f.host("d").exists(), "the node is removed again");
    }
    assert_eq!(xattr_get_host(&f.share(), "trusted.overlay.opaque"), None);
    // A security.* name still labels the new node.
    let cc = with_ctx(b"security.vtest\0", b"label");
    f.fs.mkdir(&ctx(), &cc, ROOT, name("ok"), 0o755).unwrap();
    assert_eq!(
        xattr_get_host(&f.host("ok"), "security.vtest"),
        Some(b"label".to_vec())
    );
}

#[test]
#[ignore = "needs root (security.* xattrs on the host)"]
fn security_ctx_goes_through_the_xattr_switch_and_map() {
    needs_root!();
    // Xattrs off: the label is not applied, whatever the negotiation says.
    let f = Fixture::with(|b| b.security_label(true).xattr(false));
    f.negotiate(f.fs.declared_flags() | InitFlags::SECURITY_CTX);
    let cc = with_ctx(b"security.vtest", b"label");
    f.fs.mkdir(&ctx(), &cc, ROOT, name("d"), 0o755).unwrap();
    assert_eq!(xattr_get_host(&f.host("d"), "security.vtest"), None);
    // A map: the label lands where SETXATTR would put it.
    let map = XattrMap::parse(":prefix:all:security.:user.virtiofs.: :ok:all:::").unwrap();
    let f = Fixture::with(|b| b.security_label(true).xattrmap(map));
    f.fs.mkdir(&ctx(), &cc, ROOT, name("d"), 0o755).unwrap();
    assert_eq!(xattr_get_host(&f.host("d"), "security.vtest"), None);
    assert_eq!(
        xattr_get_host(&f.host("d"), "user.virtiofs.security.vtest"),
        Some(b"label".to_vec())
    );
    // A map that refuses it refuses the creation.
    let map = XattrMap::parse(":bad:all:security.:: :ok:all:::").unwrap();
    let f = Fixture::with(|b| b.security_label(true).xattrmap(map));
    let r = f.fs.mkdir(&ctx(), &cc, ROOT, name("d"), 0o755);
    assert_eq!(r.unwrap_err(), fuse_abi::Errno::EPERM);
}

#[test]
#[ignore = "needs root (trusted.* and security.capability xattrs on the host)"]
fn default_map_never_gives_the_host_trusted_or_capability_xattrs() {
    needs_root!();
    let f = Fixture::new();
    let n = file(&f);
    // File capabilities: a v2 vfs_cap_data granting everything.
    let mut caps = vec![0u8; 20];
    caps[..4].copy_from_slice(&0x0200_0001u32.to_le_bytes());
    caps[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
    for (name, value) in [
        (c"trusted.overlay.opaque", &b"y"[..]),
        (c"trusted.x", b"y"),
        (c"security.capability", &caps),
    ] {
        f.fs.setxattr(&ctx(), n, &SetxattrArgs::new(name, value))
            .unwrap();
        let real = name.to_str().unwrap();
        // The host (root: trusted.* is visible) has the remapped name only.
        assert_eq!(xattr_get_host(&f.host("f"), real), None, "{real}");
        assert_eq!(
            xattr_get_host(&f.host("f"), &format!("user.virtiofs.{real}")),
            Some(value.to_vec()),
            "{real}"
        );
    }
    let mut names = list(&f, n);
    names.sort();
    assert_eq!(
        names,
        ["security.capability", "trusted.overlay.opaque", "trusted.x"]
    );
    for name in [
        c"trusted.overlay.opaque",
        c"trusted.x",
        c"security.capability",
    ] {
        f.fs.removexattr(&ctx(), n, name).unwrap();
    }
    assert!(list(&f, n).is_empty());
    // Set by the host under the real names: invisible to the guest, which reads the remapped
    // ones (ENODATA, as the refusal answered before: exec in the guest keeps working).
    xattr_set_host(&f.host("f"), "trusted.host", b"h");
    xattr_set_host(&f.host("f"), "security.capability", &caps);
    let mut buf = [0u8; 64];
    assert_eq!(
        f.fs.getxattr(&ctx(), n, c"security.capability", &mut buf)
            .unwrap_err(),
        Errno::ENODATA
    );
    assert_eq!(
        f.fs.getxattr(&ctx(), n, c"trusted.host", &mut buf)
            .unwrap_err(),
        Errno::ENODATA
    );
    assert!(list(&f, n).is_empty(), "{:?}", list(&f, n));
    // Removing the guest's name leaves the host's real capability alone.
    assert_eq!(
        f.fs.removexattr(&ctx(), n, c"security.capability")
            .unwrap_err(),
        Errno::ENODATA
    );
    assert_eq!(
        xattr_get_host(&f.host("f"), "security.capability"),
        Some(caps.clone())
    );
    // Other security.* names and user.* are unaffected.
    f.fs.setxattr(&ctx(), n, &SetxattrArgs::new(c"security.vtest", b"1"))
        .unwrap();
    assert_eq!(
        xattr_get_host(&f.host("f"), "security.vtest"),
        Some(b"1".to_vec())
    );
    f.fs.setxattr(&ctx(), n, &SetxattrArgs::new(c"user.k", b"1"))
        .unwrap();
    // An explicit map decides: this one passes everything.
    let f = Fixture::with(|b| b.xattrmap(XattrMap::parse(":ok:all:::").unwrap()));
    let n = file(&f);
    f.fs.setxattr(&ctx(), n, &SetxattrArgs::new(c"trusted.x", b"y"))
        .unwrap();
    assert_eq!(
        xattr_get_host(&f.host("f"), "trusted.x"),
        Some(b"y".to_vec())
    );
}
