//! Driving a real backend from a test: [`Harness`] makes each operation one short call with
//! the arguments the server would pass by default, and the free functions give the contexts,
//! names and sinks such calls need. Both passthrough backends' test suites are written on it;
//! a new backend's can be too.

use std::ffi::CString;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use fuse_abi::{InitFlags, OutHeader};
use zerocopy::FromBytes;

use super::{init_payload, request};
use crate::mem::{MemReader, MemWriter};
use crate::types::*;
use crate::{
    CreateArgs, FileSystem, FsResult, NegotiationConfig, OpenArgs, ReadArgs, ReleaseArgs, Server,
    ServerConfig, SetxattrArgs, TransportFacts, WriteArgs,
};

/// The protocol minor and `max_write` [`Harness::negotiate`] tells the backend.
pub const MINOR: u32 = 46;
/// See [`MINOR`].
pub const MAX_WRITE: u32 = 1 << 20;

/// A backend `fs` and short-hands for the operations tests use most, each as root (see
/// [`ctx`]) with default flags. Anything else: call `fs` directly.
#[derive(Debug)]
pub struct Harness<F> {
    /// The backend under test.
    pub fs: F,
}

impl<F: FileSystem> Harness<F> {
    /// Wraps `fs`, which has not been initialised yet (see [`negotiate`](Self::negotiate)).
    pub fn new(fs: F) -> Harness<F> {
        Harness { fs }
    }

    /// FUSE_INIT's effect on the backend: negotiated exactly `flags` at [`MINOR`].
    ///
    /// # Panics
    ///
    /// If the backend fails the INIT.
    pub fn negotiate(&self, flags: InitFlags) {
        self.fs
            .init(&Negotiated {
                minor: MINOR,
                flags,
                max_write: MAX_WRITE,
            })
            .expect("the backend failed FUSE_INIT");
    }

    /// LOOKUP of `n` in `parent`.
    pub fn lookup(&self, parent: NodeId, n: &str) -> FsResult<Entry> {
        self.fs.lookup(&ctx(), parent, name(n))
    }

    /// GETATTR of `nodeid`, without a handle.
    pub fn getattr(&self, nodeid: NodeId) -> FsResult<FileAttr> {
        self.fs.getattr(&ctx(), nodeid, None).map(|r| r.attr)
    }

    /// SETATTR of `nodeid`.
    pub fn setattr(&self, nodeid: NodeId, set: SetAttr) -> FsResult<FileAttr> {
        self.fs.setattr(&ctx(), nodeid, &set).map(|r| r.attr)
    }

    /// CREATE of `n` in `parent` by the caller `ctx`; the entry and the handle.
    pub fn create_as(
        &self,
        ctx: &Context,
        parent: NodeId,
        n: &str,
        mode: u32,
        flags: u32,
    ) -> FsResult<(Entry, Handle)> {
        let args = CreateArgs::new(name(n), mode, OpenArgs::new(flags));
        self.fs
            .create(ctx, &cctx(), parent, &args)
            .map(|(e, o)| (e, o.fh))
    }

    /// CREATE of `n` in `parent`; the entry and the handle.
    pub fn create(
        &self,
        parent: NodeId,
        n: &str,
        mode: u32,
        flags: u32,
    ) -> FsResult<(Entry, Handle)> {
        self.create_as(&ctx(), parent, n, mode, flags)
    }

    /// MKDIR of `n` in `parent`, mode 0755.
    pub fn mkdir(&self, parent: NodeId, n: &str) -> FsResult<Entry> {
        self.fs.mkdir(&ctx(), &cctx(), parent, name(n), 0o755)
    }

    /// OPEN of `nodeid` with open(2) `flags`; the handle.
    pub fn open(&self, nodeid: NodeId, flags: u32) -> FsResult<Handle> {
        self.fs
            .open(&ctx(), nodeid, &OpenArgs::new(flags))
            .map(|o| o.fh)
    }

    /// RELEASE of `fh`, with no flush and no lock owner.
    ///
    /// # Panics
    ///
    /// If the backend fails it.
    pub fn release(&self, nodeid: NodeId, fh: Handle) {
        self.fs
            .release(&ctx(), nodeid, &ReleaseArgs::new(fh))
            .expect("RELEASE failed");
    }

    /// WRITE of `data` at `off` through `fh`; the count written.
    ///
    /// # Panics
    ///
    /// If `data` is 4 GiB or more.
    pub fn write(&self, nodeid: NodeId, fh: Handle, off: u64, data: &[u8]) -> FsResult<usize> {
        let mut r = MemReader::new(data);
        let size = u32::try_from(data.len()).expect("a WRITE of 4 GiB or more");
        self.fs
            .write(&ctx(), nodeid, &WriteArgs::new(fh, off, size), &mut r)
    }

    /// READ of up to `size` bytes at `off` through `fh`; the bytes read.
    ///
    /// # Panics
    ///
    /// If `size` is 4 GiB or more.
    pub fn read(&self, nodeid: NodeId, fh: Handle, off: u64, size: usize) -> FsResult<Vec<u8>> {
        let mut buf = vec![0u8; size];
        let mut w = MemWriter::new(&mut buf);
        let size32 = u32::try_from(size).expect("a READ of 4 GiB or more");
        let n = self
            .fs
            .read(&ctx(), nodeid, &ReadArgs::new(fh, off, size32), &mut w)?;
        buf.truncate(n);
        Ok(buf)
    }

    /// Every name READDIR lists in directory `nodeid`, in one pass with an unbounded sink,
    /// sorted.
    ///
    /// # Panics
    ///
    /// If OPENDIR, READDIR or RELEASEDIR fails.
    pub fn list(&self, nodeid: NodeId) -> Vec<String> {
        let fh = self
            .fs
            .opendir(&ctx(), nodeid, 0)
            .expect("OPENDIR failed")
            .fh;
        let mut sink = Sink::new(usize::MAX);
        let listed = self.fs.readdir(&ctx(), nodeid, fh, 0, &mut sink);
        self.fs
            .releasedir(&ctx(), nodeid, fh, 0)
            .expect("RELEASEDIR failed");
        listed.expect("READDIR failed");
        let mut names: Vec<String> = sink.entries.into_iter().map(|e| e.name).collect();
        names.sort();
        names
    }

    /// GETXATTR of `n` on `nodeid` into a 64 KiB buffer; the value.
    ///
    /// # Panics
    ///
    /// If the backend answers with a size where data was asked for.
    pub fn getxattr(&self, nodeid: NodeId, n: &str) -> FsResult<Vec<u8>> {
        let mut buf = vec![0u8; 65536];
        match self.fs.getxattr(&ctx(), nodeid, &cstr(n), &mut buf)? {
            XattrReply::Data(len) => {
                buf.truncate(len);
                Ok(buf)
            }
            XattrReply::Size(_) => panic!("GETXATTR with a buffer answered a size"),
        }
    }

    /// SETXATTR of `n` on `nodeid` to `value`, with Linux XATTR_CREATE/REPLACE `flags`.
    pub fn setxattr(&self, nodeid: NodeId, n: &str, value: &[u8], flags: u32) -> FsResult<()> {
        let n = cstr(n);
        let args = SetxattrArgs::new(&n, value).with_flags(flags);
        self.fs.setxattr(&ctx(), nodeid, &args)
    }

    /// LISTXATTR of `nodeid` into a 64 KiB buffer; the names.
    ///
    /// # Panics
    ///
    /// If LISTXATTR fails or answers with a size.
    pub fn listxattr(&self, nodeid: NodeId) -> Vec<String> {
        let mut buf = vec![0u8; 65536];
        let listed = self.fs.listxattr(&ctx(), nodeid, &mut buf);
        let XattrReply::Data(len) = listed.expect("LISTXATTR failed") else {
            panic!("LISTXATTR with a buffer answered a size")
        };
        buf[..len]
            .split(|&b| b == 0)
            .filter(|n| !n.is_empty())
            .map(|n| String::from_utf8_lossy(n).into_owned())
            .collect()
    }
}

/// A backend behind a [`Server`] on a virtio-fs transport (a 1024-entry queue), driven with
/// raw request bytes as a guest would send them (build them with [`request`]).
#[derive(Debug)]
pub struct ServerRig<F: FileSystem> {
    /// The server, owning the backend (`server.filesystem()`).
    pub server: Server<F>,
}

impl<F: FileSystem> ServerRig<F> {
    /// A server on `fs` with the operator's `negotiation` policy, before any INIT.
    pub fn new(fs: F, negotiation: NegotiationConfig) -> ServerRig<F> {
        let config = ServerConfig {
            transport: TransportFacts::virtio_fs(1024),
            negotiation,
        };
        ServerRig {
            server: Server::new(fs, config),
        }
    }

    /// A server on `fs` with the default policy, after an INIT offering `offered` at `minor`
    /// (`max_readahead` 128 KiB).
    ///
    /// # Panics
    ///
    /// If the INIT is refused.
    pub fn initialised(fs: F, offered: InitFlags, minor: u32) -> ServerRig<F> {
        let rig = ServerRig::new(fs, NegotiationConfig::default());
        let (hdr, _) = rig.init(offered, minor);
        assert_eq!(hdr.error.get(), 0, "INIT was refused");
        rig
    }

    /// Sends an INIT offering `offered` at `minor`; the reply header and body.
    pub fn init(&self, offered: InitFlags, minor: u32) -> (OutHeader, Vec<u8>) {
        let payload = init_payload(minor, offered, 1 << 17);
        self.send(request(fuse_abi::Opcode::Init as u32, 1, 0, &payload))
    }

    /// Sends `req` as uid and gid 0 (whatever its header says) into a 2 MiB reply space; the
    /// reply header and body.
    ///
    /// # Panics
    ///
    /// If `req` is shorter than the uid/gid fields, or the server writes no reply.
    pub fn send(&self, mut req: Vec<u8>) -> (OutHeader, Vec<u8>) {
        req[24..32].fill(0); // fuse_in_header's uid and gid
        let mut out = vec![0u8; 1 << 21];
        let mut r = MemReader::new(&req);
        let mut w = MemWriter::new(&mut out);
        self.server
            .handle_message(&mut r, &mut w)
            .expect("the server produced no reply");
        let written = w.written();
        let (hdr, body) = OutHeader::read_from_prefix(written).expect("a reply without a header");
        (hdr, body.to_vec())
    }

    /// Sends `req`; the reply's errno (positive, 0 for success).
    pub fn errno(&self, req: Vec<u8>) -> i32 {
        -self.send(req).0.error.get()
    }
}

/// The request context of root (uid 0, gid 0), pid 1.
pub fn ctx() -> Context {
    ctx_as(0, 0)
}

/// The request context of `uid`:`gid`, pid 1.
pub fn ctx_as(uid: u32, gid: u32) -> Context {
    Context {
        unique: 1,
        uid,
        gid,
        pid: 1,
    }
}

/// No umask rule, no security context, no supplementary group.
pub fn cctx() -> CreateContext<'static> {
    CreateContext::default()
}

/// `s` as a checked name.
///
/// # Panics
///
/// If `s` is not a valid name (empty, `/` or NUL in it, too long).
pub fn name(s: &str) -> Name<'_> {
    Name::new(s.as_bytes()).expect("not a valid name")
}

/// `s` as a C string.
///
/// # Panics
///
/// If `s` holds a NUL.
pub fn cstr(s: &str) -> CString {
    CString::new(s).expect("a NUL in a C string")
}

/// Everything under `dir`, recursively, as (path, contents) pairs (directories and special
/// files with empty contents), sorted: compare two to show that nothing changed.
///
/// # Panics
///
/// If `dir` or an entry under it cannot be read.
pub fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let entries = std::fs::read_dir(dir).expect("cannot list a snapshot's directory");
    for e in entries {
        let p = e.expect("cannot list a snapshot's directory").path();
        let meta = std::fs::symlink_metadata(&p).expect("cannot stat a snapshot's entry");
        if meta.is_dir() {
            out.push((p.clone(), Vec::new()));
            out.extend(snapshot(&p));
        } else if meta.is_file() {
            let data = std::fs::read(&p).expect("cannot read a snapshot's file");
            out.push((p, data));
        } else {
            out.push((p, Vec::new()));
        }
    }
    out.sort();
    out
}

/// One entry a [`Sink`] took.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listed {
    /// The name, lossily as UTF-8.
    pub name: String,
    /// The inode number READDIR gave.
    pub ino: u64,
    /// The `DT_*` type.
    pub typ: u32,
    /// The offset that resumes after this entry.
    pub offset: u64,
    /// READDIRPLUS only: the entry (default for READDIR).
    pub entry: Entry,
}

/// A READDIR and READDIRPLUS sink taking at most `cap` entries.
#[derive(Debug)]
pub struct Sink {
    /// How many entries it takes.
    pub cap: usize,
    /// What it took, in order.
    pub entries: Vec<Listed>,
}

impl Sink {
    /// An empty sink for `cap` entries.
    pub fn new(cap: usize) -> Sink {
        Sink {
            cap,
            entries: Vec::new(),
        }
    }

    /// The entry named `name`.
    ///
    /// # Panics
    ///
    /// If none is.
    pub fn get(&self, name: &str) -> &Listed {
        self.entries
            .iter()
            .find(|e| e.name == name)
            .unwrap_or_else(|| panic!("no entry {name:?} was listed"))
    }

    fn take(&mut self, e: &DirEntry<'_>, entry: Entry) -> bool {
        if self.entries.len() >= self.cap {
            return false;
        }
        self.entries.push(Listed {
            name: String::from_utf8_lossy(e.name).into_owned(),
            ino: e.ino,
            typ: e.typ,
            offset: e.offset,
            entry,
        });
        true
    }
}

impl DirSink for Sink {
    fn add(&mut self, e: DirEntry<'_>) -> bool {
        self.take(&e, Entry::default())
    }
}

impl DirPlusSink for Sink {
    fn fits(&self, _namelen: usize) -> bool {
        self.entries.len() < self.cap
    }

    fn add(&mut self, e: DirEntry<'_>, entry: &Entry) -> bool {
        self.take(&e, *entry)
    }
}

/// Whether the test process runs as root (its effective uid is 0). Tests of what only root
/// may do (device nodes, whiteouts, chown to other ids, `security.*` xattrs, mounts,
/// identity switching) check it, through [`needs_root!`](crate::needs_root).
pub fn is_root() -> bool {
    // The owner of /proc/self is the process's effective uid.
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// Returns from (passes) a test that needs root, with a note, when the process is not root:
/// a non-root developer gets the note instead of a spurious failure, and CI (root) runs it.
#[macro_export]
macro_rules! needs_root {
    () => {
        if !$crate::test_utils::harness::is_root() {
            eprintln!("skipped: needs root");
            return;
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_sees_nested_changes() {
        let dir = std::env::temp_dir().join(format!("harness-snap-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("a/b")).unwrap();
        std::fs::write(dir.join("a/b/f"), b"x").unwrap();
        let before = snapshot(&dir);
        assert_eq!(before.len(), 3);
        std::fs::write(dir.join("a/b/f"), b"y").unwrap();
        assert_ne!(snapshot(&dir), before);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn sink_stops_at_its_capacity() {
        let mut sink = Sink::new(1);
        let e = DirEntry {
            ino: 7,
            offset: 1,
            typ: 8,
            name: b"f",
        };
        assert!(DirSink::add(&mut sink, e));
        assert!(!DirSink::add(&mut sink, e));
        assert!(!sink.fits(1));
        assert_eq!(sink.get("f").ino, 7);
    }
}
