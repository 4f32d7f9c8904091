//! The macOS backend on the Linux adapter over a fresh temp directory; the short-hands and
//! sinks are the shared [`fuse_server::test_utils::harness`], re-exported.
#![allow(
    dead_code,
    unused_imports,
    unreachable_pub,
    missing_docs,
    clippy::unwrap_used
)]

use std::ffi::CStr;
use std::ops::Deref;
use std::path::PathBuf;

pub use fuse_server::test_utils::harness::*;
use fuse_server::{FileSystem, NodeId};
use passthrough_macos::host::LinuxHost;
use passthrough_macos::{Config, Host, HostId, Node, PassthroughFs};

/// The backend serving `share` inside a temp dir that also holds `outside`, a sibling the guest
/// must never reach. Derefs to its [`Harness`] (so `fixture.fs` is the backend).
pub struct Fixture {
    pub tmp: tempfile::TempDir,
    pub root: HostId,
    harness: Harness<PassthroughFs<LinuxHost>>,
}

impl Deref for Fixture {
    type Target = Harness<PassthroughFs<LinuxHost>>;

    fn deref(&self) -> &Harness<PassthroughFs<LinuxHost>> {
        &self.harness
    }
}

impl Fixture {
    pub fn new() -> Fixture {
        Fixture::with(|c| c)
    }

    pub fn with(f: impl FnOnce(Config) -> Config) -> Fixture {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir(tmp.path().join("share")).unwrap();
        std::fs::create_dir(tmp.path().join("outside")).unwrap();
        std::fs::write(tmp.path().join("outside/secret"), b"secret").unwrap();
        Fixture::on(tmp, f)
    }

    /// The backend on `tmp/share`, which must exist.
    pub fn on(tmp: tempfile::TempDir, f: impl FnOnce(Config) -> Config) -> Fixture {
        let config = f(Config::new(tmp.path().join("share")));
        let host = LinuxHost::default();
        let st = host.root(&tmp.path().join("share")).unwrap();
        let harness = Harness::new(PassthroughFs::new(host, config).unwrap());
        harness.negotiate(harness.fs.capabilities().flags);
        Fixture {
            tmp,
            root: HostId {
                dev: st.dev,
                ino: st.ino,
            },
            harness,
        }
    }

    pub fn share(&self) -> PathBuf {
        self.tmp.path().join("share")
    }

    pub fn outside(&self) -> PathBuf {
        self.tmp.path().join("outside")
    }

    pub fn host_path(&self, rel: &str) -> PathBuf {
        self.share().join(rel)
    }

    /// The override xattr of the host object `name` in the share's root, read through the
    /// host adapter (as the macOS host stores it).
    pub fn host_override(&self, name: &str) -> Option<String> {
        let mut buf = [0u8; 64];
        let node = Node::Child(self.root, name.as_bytes());
        let len = self
            .fs
            .host()
            .getxattr(node, c"user.containers.override_stat", &mut buf, 1)
            .ok()?;
        Some(String::from_utf8_lossy(&buf[..len]).into_owned())
    }
}

pub const fn root() -> NodeId {
    NodeId::ROOT
}

pub fn c(s: &CStr) -> &CStr {
    s
}
