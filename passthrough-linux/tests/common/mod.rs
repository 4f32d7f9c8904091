//! The Linux backend on a fresh temp directory; the short-hands and sinks are the shared
//! [`fuse_server::test_utils::harness`], re-exported.
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

use fuse_server::NodeId;
pub use fuse_server::needs_root;
pub use fuse_server::test_utils::harness::*;
use passthrough_linux::{Config, ConfigBuilder, PassthroughFs};

/// A backend serving `share` inside a temp dir that also holds `outside`, a sibling the guest
/// must never reach. Derefs to its [`Harness`] (so `fixture.fs` is the backend).
pub struct Fixture {
    pub tmp: tempfile::TempDir,
    harness: Harness<PassthroughFs>,
}

impl Deref for Fixture {
    type Target = Harness<PassthroughFs>;

    fn deref(&self) -> &Harness<PassthroughFs> {
        &self.harness
    }
}

impl Fixture {
    pub fn new() -> Fixture {
        Fixture::with(|b| b)
    }

    pub fn with(f: impl FnOnce(ConfigBuilder) -> ConfigBuilder) -> Fixture {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir(tmp.path().join("share")).unwrap();
        std::fs::create_dir(tmp.path().join("outside")).unwrap();
        std::fs::write(tmp.path().join("outside/secret"), b"secret").unwrap();
        // PASSTHROUGH_TEST_FILE_HANDLES=never runs the whole suite on O_PATH descriptors.
        let mode = match std::env::var("PASSTHROUGH_TEST_FILE_HANDLES").as_deref() {
            Ok("never") => passthrough_linux::FileHandleMode::Never,
            Ok("mandatory") => passthrough_linux::FileHandleMode::Mandatory,
            _ => passthrough_linux::FileHandleMode::Prefer,
        };
        let cfg = f(Config::builder(tmp.path().join("share")).file_handles(mode))
            .build()
            .unwrap();
        let harness = Harness::new(PassthroughFs::new(cfg).unwrap());
        harness.negotiate(harness.fs.declared_flags());
        Fixture { tmp, harness }
    }

    pub fn share(&self) -> PathBuf {
        self.tmp.path().join("share")
    }

    pub fn outside(&self) -> PathBuf {
        self.tmp.path().join("outside")
    }

    pub fn host(&self, rel: &str) -> PathBuf {
        self.share().join(rel)
    }
}

pub const ROOT: NodeId = NodeId::ROOT;

pub fn c(s: &CStr) -> &CStr {
    s
}
