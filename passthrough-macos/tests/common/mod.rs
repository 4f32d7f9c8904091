//! Shared helpers: the macOS backend on the Linux adapter over a fresh temp directory.
#![allow(dead_code, unreachable_pub, missing_docs, clippy::unwrap_used)]

use std::ffi::{CStr, CString};
use std::path::{Path, PathBuf};

use fuse_abi::{Errno, InitFlags};
use fuse_server::mem::{MemReader, MemWriter};
use fuse_server::{
    Context, CreateArgs, CreateContext, DirEntry, DirSink, Entry, FileAttr, FileSystem, Handle,
    Name, Negotiated, NodeId, OpenArgs, ReadArgs, ReleaseArgs, SetAttr, SetxattrArgs, WriteArgs,
    XattrReply,
};
use passthrough_macos::host::LinuxHost;
use passthrough_macos::{Config, Host, HostId, Node, PassthroughFs};

/// The backend serving `share` inside a temp dir that also holds `outside`, a sibling the guest
/// must never reach.
pub struct Fixture {
    pub tmp: tempfile::TempDir,
    pub fs: PassthroughFs<LinuxHost>,
    pub root: HostId,
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
        let fs = PassthroughFs::new(host, config).unwrap();
        let flags = fs.capabilities().flags;
        fs.init(&Negotiated {
            minor: 46,
            flags,
            max_write: 1 << 20,
        })
        .unwrap();
        Fixture {
            tmp,
            fs,
            root: HostId {
                dev: st.dev,
                ino: st.ino,
            },
        }
    }

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

    pub fn lookup(&self, parent: NodeId, n: &str) -> Result<Entry, Errno> {
        self.fs.lookup(&ctx(), parent, name(n))
    }

    pub fn getattr(&self, nodeid: NodeId) -> Result<FileAttr, Errno> {
        self.fs.getattr(&ctx(), nodeid, None).map(|r| r.attr)
    }

    pub fn setattr(&self, nodeid: NodeId, set: SetAttr) -> Result<FileAttr, Errno> {
        self.fs.setattr(&ctx(), nodeid, &set).map(|r| r.attr)
    }

    pub fn create_as(
        &self,
        ctx: &Context,
        parent: NodeId,
        n: &str,
        mode: u32,
        flags: u32,
    ) -> Result<(Entry, Handle), Errno> {
        self.fs
            .create(
                ctx,
                &cctx(),
                parent,
                &CreateArgs::new(name(n), mode, OpenArgs::new(flags)),
            )
            .map(|(e, o)| (e, o.fh))
    }

    pub fn create(
        &self,
        parent: NodeId,
        n: &str,
        mode: u32,
        flags: u32,
    ) -> Result<(Entry, Handle), Errno> {
        self.create_as(&ctx(), parent, n, mode, flags)
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
        let size32 = u32::try_from(size).unwrap();
        let n = self
            .fs
            .read(&ctx(), nodeid, &ReadArgs::new(fh, off, size32), &mut w)?;
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

    /// The names READDIR lists in `nodeid`, read in one go.
    pub fn list(&self, nodeid: NodeId) -> Vec<String> {
        let fh = self.fs.opendir(&ctx(), nodeid, 0).unwrap().fh;
        let mut sink = Sink::new(usize::MAX);
        self.fs.readdir(&ctx(), nodeid, fh, 0, &mut sink).unwrap();
        self.fs.releasedir(&ctx(), nodeid, fh, 0).unwrap();
        let mut names: Vec<String> = sink.entries.into_iter().map(|e| e.1).collect();
        names.sort();
        names
    }

    pub fn getxattr(&self, nodeid: NodeId, n: &str) -> Result<Vec<u8>, Errno> {
        let mut buf = vec![0u8; 65536];
        match self.fs.getxattr(&ctx(), nodeid, &cstr(n), &mut buf)? {
            XattrReply::Data(len) => {
                buf.truncate(len);
                Ok(buf)
            }
            XattrReply::Size(_) => unreachable!(),
        }
    }

    pub fn setxattr(&self, nodeid: NodeId, n: &str, value: &[u8], flags: u32) -> Result<(), Errno> {
        self.fs.setxattr(
            &ctx(),
            nodeid,
            &SetxattrArgs::new(&cstr(n), value).with_flags(flags),
        )
    }

    pub fn listxattr(&self, nodeid: NodeId) -> Vec<String> {
        let mut buf = vec![0u8; 65536];
        let XattrReply::Data(len) = self.fs.listxattr(&ctx(), nodeid, &mut buf).unwrap() else {
            unreachable!()
        };
        buf[..len]
            .split(|&b| b == 0)
            .filter(|n| !n.is_empty())
            .map(|n| String::from_utf8_lossy(n).into_owned())
            .collect()
    }
}

pub fn ctx() -> Context {
    ctx_as(0, 0)
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

pub fn cstr(s: &str) -> CString {
    CString::new(s).unwrap()
}

pub const fn root() -> NodeId {
    NodeId::ROOT
}

/// Every file under `dir` with its contents, to show that nothing changed.
pub fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap_or_default();
        out.push((path, data));
    }
    out.sort();
    out
}

/// A READDIR sink accepting at most `cap` entries.
pub struct Sink {
    pub cap: usize,
    pub entries: Vec<(u64, String, u32, u64)>,
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
            e.ino,
            String::from_utf8_lossy(e.name).into_owned(),
            e.typ,
            e.offset,
        ));
        true
    }
}

pub fn is_root() -> bool {
    std::fs::metadata("/proc/self").is_ok() && nix_euid() == 0
}

fn nix_euid() -> u32 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(str::to_owned))
        })
        .and_then(|u| u.parse().ok())
        .unwrap_or(u32::MAX)
}

pub fn c(s: &CStr) -> &CStr {
    s
}
