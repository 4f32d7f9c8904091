//! Test backends (feature `test-utils`): [`TestFs`] answers every operation with a plausible
//! success and, when recording, logs each call; plus helpers to build requests.
//!
//! - [`NullFs`]: `TestFs::null(caps)`, no recording (fuzzing, benches);
//! - [`RecordingFs`]: `TestFs::recording(caps)`, every call is logged as a [`Call`].
//!
//! READ and WRITE move data through a backing file when one is set with [`TestFs::with_file`]
//! (through the zero-copy traits, as a real backend does); otherwise READ returns 0 bytes and
//! WRITE consumes nothing and reports `size`.
//!
//! [`harness`] drives a real backend from its tests.

mod backend;
pub mod harness;
mod requests;

use std::fs::File;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use fuse_abi::{Errno, InitFlags};

pub use self::requests::{init_payload, request, request_ext, sample_args};
use crate::types::*;
use crate::{Capabilities, FsResult};

/// One backend call as [`RecordingFs`] saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Call {
    /// The `FileSystem` method name (`"lookup"`, `"batch_forget"`, ...).
    pub method: &'static str,
    /// The node id (or parent directory) the call was about.
    pub nodeid: NodeId,
    /// The request context.
    pub ctx: Context,
    /// Other arguments, formatted with `Debug`.
    pub detail: String,
}

/// A backend that succeeds at everything; see the [module](self).
#[derive(Debug)]
pub struct TestFs {
    caps: Capabilities,
    record: bool,
    calls: Mutex<Vec<Call>>,
    file: Option<File>,
    inits: AtomicU64,
    destroys: AtomicU64,
    next_node: AtomicU64,
}

/// A [`TestFs`] that does not record.
pub type NullFs = TestFs;
/// A [`TestFs`] that records every call.
pub type RecordingFs = TestFs;

impl TestFs {
    /// A backend that records nothing.
    pub fn null(caps: Capabilities) -> TestFs {
        TestFs::new(caps, false)
    }

    /// A backend that records every call.
    pub fn recording(caps: Capabilities) -> TestFs {
        TestFs::new(caps, true)
    }

    fn new(caps: Capabilities, record: bool) -> TestFs {
        TestFs {
            caps,
            record,
            calls: Mutex::new(Vec::new()),
            file: None,
            inits: AtomicU64::new(0),
            destroys: AtomicU64::new(0),
            next_node: AtomicU64::new(2),
        }
    }

    /// Uses `file` as the data of every READ and WRITE.
    #[must_use]
    pub fn with_file(mut self, file: File) -> TestFs {
        self.file = Some(file);
        self
    }

    /// The calls so far, oldest first.
    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The method names called so far.
    pub fn methods(&self) -> Vec<&'static str> {
        self.calls().into_iter().map(|c| c.method).collect()
    }

    /// Forgets the recorded calls.
    pub fn clear(&self) {
        self.calls.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    /// How often `init` and `destroy` ran.
    pub fn init_destroy_counts(&self) -> (u64, u64) {
        (
            self.inits.load(Ordering::Relaxed),
            self.destroys.load(Ordering::Relaxed),
        )
    }

    pub(super) fn rec(
        &self,
        method: &'static str,
        ctx: &Context,
        nodeid: NodeId,
        detail: std::fmt::Arguments<'_>,
    ) {
        if self.record {
            let call = Call {
                method,
                nodeid,
                ctx: *ctx,
                detail: detail.to_string(),
            };
            self.calls
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(call);
        }
    }

    pub(super) fn entry(&self, mode: u32) -> Entry {
        let ino = self.next_node.fetch_add(1, Ordering::Relaxed);
        Entry {
            nodeid: NodeId(ino),
            generation: 1,
            attr: FileAttr {
                ino,
                mode,
                nlink: 1,
                blksize: 4096,
                ..FileAttr::default()
            },
            attr_timeout: Duration::from_secs(1),
            entry_timeout: Duration::from_secs(1),
        }
    }
}

pub(super) const DIR: u32 = fuse_abi::mode::S_IFDIR | 0o755;
pub(super) const REG: u32 = fuse_abi::mode::S_IFREG | 0o644;

impl TestFs {
    /// READDIR's entries: `.`, `..` and `file`, from `offset` on.
    fn fill_dir(&self, offset: u64, sink: &mut dyn DirSink) -> FsResult<()> {
        for (i, name) in [&b"."[..], b"..", b"file"]
            .iter()
            .enumerate()
            .skip(skip(offset))
        {
            let entry = DirEntry {
                ino: 1,
                offset: u64::try_from(i).unwrap_or(0).saturating_add(1),
                typ: fuse_abi::mode::DT_DIR,
                name,
            };
            if !sink.add(entry) {
                break;
            }
        }
        Ok(())
    }

    /// READDIRPLUS's entries: as READDIR's, each with a fresh node.
    fn fill_dirplus(&self, offset: u64, sink: &mut dyn DirPlusSink) -> FsResult<()> {
        for (i, name) in [&b"."[..], b"..", b"file"]
            .iter()
            .enumerate()
            .skip(skip(offset))
        {
            if !sink.fits(name.len()) {
                break;
            }
            let entry = self.entry(REG);
            let d = DirEntry {
                ino: entry.attr.ino,
                offset: u64::try_from(i).unwrap_or(0).saturating_add(1),
                typ: fuse_abi::mode::DT_REG,
                name,
            };
            if !sink.add(d, &entry) {
                break;
            }
        }
        Ok(())
    }
}

fn skip(offset: u64) -> usize {
    usize::try_from(offset).unwrap_or(usize::MAX)
}

/// The reply to an open that handed out handle `fh`.
pub(super) fn opened(fh: u64) -> OpenReply {
    OpenReply {
        fh: Handle(fh),
        ..OpenReply::default()
    }
}

pub(super) fn xattr_value(value: &[u8], buf: &mut [u8]) -> FsResult<XattrReply> {
    if buf.is_empty() {
        return Ok(XattrReply::Size(
            u32::try_from(value.len()).unwrap_or(u32::MAX),
        ));
    }
    let dst = buf.get_mut(..value.len()).ok_or(Errno::ERANGE)?;
    dst.copy_from_slice(value);
    Ok(XattrReply::Data(value.len()))
}

/// Capabilities with every INIT flag a backend can declare, and the uid/gid obligation met.
pub fn all_capabilities() -> Capabilities {
    Capabilities::new()
        .with_flags(InitFlags::all())
        .with_invalid_uidgid_handling()
        .with_max_write(1 << 20, 256)
        .with_time_gran(1)
}
