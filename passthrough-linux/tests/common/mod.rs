//! Shared helpers: a backend on a fresh temp directory, sinks, and short-hands.
#![allow(dead_code, unreachable_pub, missing_docs, clippy::unwrap_used)]

use std::ffi::CStr;
use std::path::{Path, PathBuf};

use fuse_abi::{Errno, InitFlags};
use fuse_server::mem::{MemReader, MemWriter};
use fuse_server::{
    Context, CreateArgs, CreateContext, DirEntry, DirPlusSink, DirSink, Entry, FileSystem, Handle,
    Name, Negotiated, NodeId, OpenArgs, ReadArgs, ReleaseArgs, WriteArgs,
};
use passthrough_linux::{Config, ConfigBuilder, PassthroughFs};

/// A backend serving `share` inside a temp dir that also holds `outside`, a sibling the guest
/// must never reach.
pub struct Fixture {
    pub tmp: tempfile::TempDir,
    pub fs: PassthroughFs,
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
        let fs = PassthroughFs::new(cfg).unwrap();
        let flags = fs.declared_flags();
        fs.init(&Negotiated {
            minor: 46,
            flags,
            max_write: 1 << 20,
        })
        .unwrap();
        Fixture { tmp, fs }
    }

    /// Negotiates again with exactly `flags`.
    pub fn negotiate(&self, flags: InitFlags) {
        self.fs
            .init(&Negotiated {
                minor: 46,
                flags,
                max_write: 1 << 20,
            })
            .unwrap();
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

    pub fn lookup(&self, parent: NodeId, n: &str) -> Result<Entry, Errno> {
        self.fs.lookup(&ctx(), parent, name(n))
    }

    pub fn create(
        &self,
        parent: NodeId,
        n: &str,
        mode: u32,
        flags: u32,
    ) -> Result<(Entry, Handle), Errno> {
        let args = CreateArgs::new(name(n), mode, OpenArgs::new(flags));
        self.fs
            .create(&ctx(), &cctx(), parent, &args)
            .map(|(e, o)| (e, o.fh))
    }

    pub fn mkdir(&self, parent: NodeId, n: &str) -> Result<Entry, Errno> {
        self.fs.mkdir(&ctx(), &cctx(), parent, name(n), 0o755)
    }

    pub fn write(&self, nodeid: NodeId, fh: Handle, off: u64, data: &[u8]) -> Result<usize, Errno> {
        let mut r = MemReader::new(data);
        let size = u32::try_from(data.len()).unwrap();
        self.fs
            .write(&ctx(), nodeid, &WriteArgs::new(fh, off, size), &mut r)
    }

    pub fn read(
        &self,
        nodeid: NodeId,
        fh: Handle,
        off: u64,
        size: usize,
    ) -> Result<Vec<u8>, Errno> {
        let mut buf = vec![0u8; size];
        let mut w = MemWriter::new(&mut buf);
        let args = ReadArgs::new(fh, off, u32::try_from(size).unwrap());
        let n = self.fs.read(&ctx(), nodeid, &args, &mut w)?;
        buf.truncate(n);
        Ok(buf)
    }

    pub fn open(&self, nodeid: NodeId, flags: u32) -> Result<Handle, Errno> {
        self.fs
            .open(&ctx(), nodeid, &OpenArgs::new(flags))
            .map(|o| o.fh)
    }

    pub fn release(&self, nodeid: NodeId, fh: Handle) {
        self.fs
            .release(&ctx(), nodeid, &ReleaseArgs::new(fh))
            .unwrap();
    }

    /// Every name in directory `nodeid`, through READDIR, in one pass with a big sink.
    pub fn list(&self, nodeid: NodeId) -> Vec<String> {
        let fh = self.fs.opendir(&ctx(), nodeid, 0).unwrap().fh;
        let mut sink = Sink::new(usize::MAX);
        self.fs.readdir(&ctx(), nodeid, fh, 0, &mut sink).unwrap();
        self.fs.releasedir(&ctx(), nodeid, fh, 0).unwrap();
        let mut names: Vec<String> = sink.entries.into_iter().map(|(n, _, _)| n).collect();
        names.sort();
        names
    }
}

pub const ROOT: NodeId = NodeId::ROOT;

pub fn ctx() -> Context {
    Context {
        unique: 1,
        uid: 0,
        gid: 0,
        pid: 1,
    }
}

pub fn ctx_as(uid: u32, gid: u32) -> Context {
    Context {
        unique: 1,
        uid,
        gid,
        pid: 1,
    }
}

pub fn cctx() -> CreateContext<'static> {
    CreateContext::default()
}

pub fn name(s: &str) -> Name<'_> {
    Name::new(s.as_bytes()).unwrap()
}

pub fn cstr(s: &str) -> std::ffi::CString {
    std::ffi::CString::new(s).unwrap()
}

pub fn c(s: &CStr) -> &CStr {
    s
}

/// Everything outside the share, as (relative path, content) pairs, to compare before and after.
pub fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let p = e.path();
        let meta = std::fs::symlink_metadata(&p).unwrap();
        if meta.is_dir() {
            out.push((p.clone(), Vec::new()));
            out.extend(snapshot(&p));
        } else if meta.is_file() {
            out.push((p.clone(), std::fs::read(&p).unwrap()));
        } else {
            out.push((p.clone(), Vec::new()));
        }
    }
    out.sort();
    out
}

/// A READDIR / READDIRPLUS sink with a capacity in entries.
pub struct Sink {
    pub cap: usize,
    pub entries: Vec<(String, u64, Entry)>,
}

impl Sink {
    pub fn new(cap: usize) -> Sink {
        Sink {
            cap,
            entries: Vec::new(),
        }
    }
}

impl DirSink for Sink {
    fn add(&mut self, e: DirEntry<'_>) -> bool {
        if self.entries.len() >= self.cap {
            return false;
        }
        self.entries.push((
            String::from_utf8_lossy(e.name).into_owned(),
            e.offset,
            Entry::default(),
        ));
        true
    }
}

impl DirPlusSink for Sink {
    fn fits(&self, _namelen: usize) -> bool {
        self.entries.len() < self.cap
    }

    fn add(&mut self, e: DirEntry<'_>, entry: &Entry) -> bool {
        if self.entries.len() >= self.cap {
            return false;
        }
        self.entries.push((
            String::from_utf8_lossy(e.name).into_owned(),
            e.offset,
            *entry,
        ));
        true
    }
}

/// Whether the tests run as root (they do in CI here).
pub fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

/// Skips (passes) a test that needs root: device nodes, whiteouts, chown to other ids,
/// `security.*` xattrs, mounts, identity switching. These run by default, since the project's
/// test process is root; a non-root developer gets a note instead of a spurious failure.
#[macro_export]
macro_rules! needs_root {
    () => {
        if !common::is_root() {
            eprintln!("skipped: needs root");
            return;
        }
    };
}
