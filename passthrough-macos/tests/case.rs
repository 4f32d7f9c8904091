//! The case policy on a case-insensitive volume (APFS's default). This host's kernel has no
//! casefolding (`CONFIG_UNICODE`), so the volume is emulated: a [`Host`] that wraps the Linux
//! adapter and resolves a name that does not exist exactly by ASCII case-insensitive match, as
//! a case-insensitive APFS volume does, and reports itself case-insensitive.
// The Linux adapter is the host here; on a Mac these would need `DarwinHost`.
#![cfg(target_os = "linux")]
#![allow(clippy::unwrap_used)]

mod common;

use std::ffi::CStr;
use std::io;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::path::Path;
use std::sync::Arc;

use common::{cctx, ctx, name};
use fuse_abi::{Errno, InitFlags};
use fuse_server::limits::Budget;
use fuse_server::{FileSystem, Negotiated, NodeId};
use passthrough_macos::errno::DarwinErrno;
use passthrough_macos::fallocate::HostFstore;
use passthrough_macos::host::LinuxHost;
use passthrough_macos::lock::HostFlock;
use passthrough_macos::stat::HostStat;
use passthrough_macos::statfs::HostStatfs;
use passthrough_macos::time::HostTimespec;
use passthrough_macos::{
    CasePolicy, Config, DirStream, Host, HostId, HostResult, Node, PassthroughFs, SyncMode,
};

#[derive(Debug, Default)]
struct Insensitive(LinuxHost);

impl Insensitive {
    /// The stored name `name` resolves to in `dir`: itself if it exists, else its first
    /// case-insensitive match.
    fn resolve(&self, dir: HostId, name: &[u8]) -> HostResult<Vec<u8>> {
        if self.0.lstat(Node::Child(dir, name)).is_ok() {
            return Ok(name.to_vec());
        }
        let fd = self.0.open(Node::Id(dir), 0x10_0000, 0)?; // O_RDONLY | O_DIRECTORY
        let mut stream = self.0.open_dir(std::os::fd::AsFd::as_fd(&fd))?;
        while let Some(e) = stream.next_entry()? {
            if e.name.eq_ignore_ascii_case(name) {
                return Ok(e.name.to_vec());
            }
        }
        Err(DarwinErrno::ENOENT)
    }
}

impl Host for Insensitive {
    type DirStream = <LinuxHost as Host>::DirStream;

    fn root(&self, path: &Path) -> HostResult<HostStat> {
        self.0.root(path)
    }
    fn lstat(&self, node: Node<'_>) -> HostResult<HostStat> {
        match node {
            Node::Child(dir, name) => {
                let stored = self.resolve(dir, name)?;
                self.0.lstat(Node::Child(dir, &stored))
            }
            other => self.0.lstat(other),
        }
    }
    fn open(&self, node: Node<'_>, flags: i32, mode: u16) -> HostResult<OwnedFd> {
        self.0.open(node, flags, mode)
    }
    fn mkdir(&self, dir: HostId, name: &[u8], mode: u16) -> HostResult<()> {
        if self.resolve(dir, name).is_ok() {
            return Err(DarwinErrno::EEXIST);
        }
        self.0.mkdir(dir, name, mode)
    }
    fn symlink(&self, target: &CStr, dir: HostId, name: &[u8]) -> HostResult<()> {
        self.0.symlink(target, dir, name)
    }
    fn readlink(&self, node: Node<'_>, buf: &mut [u8]) -> HostResult<usize> {
        self.0.readlink(node, buf)
    }
    fn unlink(&self, dir: HostId, name: &[u8]) -> HostResult<()> {
        self.0.unlink(dir, name)
    }
    fn rmdir(&self, dir: HostId, name: &[u8]) -> HostResult<()> {
        self.0.rmdir(dir, name)
    }
    fn rename(&self, od: HostId, on: &[u8], nd: HostId, nn: &[u8], flags: u32) -> HostResult<()> {
        self.0.rename(od, on, nd, nn, flags)
    }
    fn link(&self, node: HostId, newdir: HostId, newname: &[u8]) -> HostResult<()> {
        self.0.link(node, newdir, newname)
    }
    fn chmod(&self, node: Node<'_>, mode: u16) -> HostResult<()> {
        self.0.chmod(node, mode)
    }
    fn utimens(&self, node: Node<'_>, times: &[HostTimespec; 2]) -> HostResult<()> {
        self.0.utimens(node, times)
    }
    fn truncate(&self, fd: BorrowedFd<'_>, len: u64) -> HostResult<()> {
        self.0.truncate(fd, len)
    }
    fn getxattr(&self, node: Node<'_>, n: &CStr, buf: &mut [u8], o: i32) -> HostResult<usize> {
        match node {
            Node::Child(dir, name) => {
                let stored = self.resolve(dir, name)?;
                self.0.getxattr(Node::Child(dir, &stored), n, buf, o)
            }
            other => self.0.getxattr(other, n, buf, o),
        }
    }
    fn setxattr(&self, node: Node<'_>, n: &CStr, value: &[u8], o: i32) -> HostResult<()> {
        self.0.setxattr(node, n, value, o)
    }
    fn listxattr(&self, node: Node<'_>, buf: &mut [u8], o: i32) -> HostResult<usize> {
        self.0.listxattr(node, buf, o)
    }
    fn removexattr(&self, node: Node<'_>, n: &CStr, o: i32) -> HostResult<()> {
        self.0.removexattr(node, n, o)
    }
    fn pread(&self, fd: BorrowedFd<'_>, buf: &mut [u8], offset: u64) -> HostResult<usize> {
        self.0.pread(fd, buf, offset)
    }
    fn pwrite(&self, fd: BorrowedFd<'_>, buf: &[u8], offset: u64) -> HostResult<usize> {
        self.0.pwrite(fd, buf, offset)
    }
    fn lseek(&self, fd: BorrowedFd<'_>, offset: i64, whence: i32) -> HostResult<u64> {
        self.0.lseek(fd, offset, whence)
    }
    fn fsync(&self, fd: BorrowedFd<'_>, mode: SyncMode) -> HostResult<()> {
        self.0.fsync(fd, mode)
    }
    fn preallocate(&self, fd: BorrowedFd<'_>, store: &HostFstore) -> HostResult<()> {
        self.0.preallocate(fd, store)
    }
    fn punch_hole(&self, fd: BorrowedFd<'_>, offset: u64, len: u64) -> HostResult<()> {
        self.0.punch_hole(fd, offset, len)
    }
    fn set_nocache(&self, fd: BorrowedFd<'_>) -> HostResult<()> {
        self.0.set_nocache(fd)
    }
    fn lock(&self, fd: BorrowedFd<'_>, cmd: i32, lock: &mut HostFlock) -> HostResult<()> {
        self.0.lock(fd, cmd, lock)
    }
    fn flock(&self, fd: BorrowedFd<'_>, operation: i32) -> HostResult<()> {
        self.0.flock(fd, operation)
    }
    fn statfs(&self, node: Node<'_>) -> HostResult<HostStatfs> {
        self.0.statfs(node)
    }
    fn name_max(&self, node: Node<'_>) -> HostResult<u32> {
        self.0.name_max(node)
    }
    fn case_sensitive(&self, _dir: HostId) -> HostResult<bool> {
        Ok(false)
    }
    fn stored_name(&self, dir: HostId, name: &[u8], buf: &mut [u8]) -> HostResult<usize> {
        let stored = self.resolve(dir, name)?;
        let dest = buf.get_mut(..stored.len()).ok_or(DarwinErrno::ERANGE)?;
        dest.copy_from_slice(&stored);
        Ok(stored.len())
    }
    fn open_dir(&self, fd: BorrowedFd<'_>) -> HostResult<Self::DirStream> {
        self.0.open_dir(fd)
    }
    fn nofile_limit(&self) -> Option<u64> {
        self.0.nofile_limit()
    }
    fn use_fd_budget(&self, budget: &Arc<Budget>) {
        self.0.use_fd_budget(budget);
    }
    fn io_errno(&self, err: &io::Error) -> DarwinErrno {
        self.0.io_errno(err)
    }
    fn forget(&self, id: HostId) {
        self.0.forget(id);
    }
}

fn backend(policy: CasePolicy) -> (tempfile::TempDir, PassthroughFs<Insensitive>) {
    let tmp = tempfile::tempdir().unwrap();
    let config = Config {
        case: policy,
        ..Config::new(tmp.path())
    };
    let fs = PassthroughFs::new(Insensitive::default(), config).unwrap();
    fs.init(&Negotiated {
        minor: 46,
        flags: InitFlags::empty(),
        max_write: 1 << 20,
    })
    .unwrap();
    fs.mkdir(&ctx(), &cctx(), NodeId(1), name("Makefile.d"), 0o755)
        .unwrap();
    (tmp, fs)
}

#[test]
fn exact_policy_answers_only_the_stored_spelling() {
    let (_tmp, fs) = backend(CasePolicy::Exact);
    let stored = fs.lookup(&ctx(), NodeId(1), name("Makefile.d")).unwrap();
    for variant in ["makefile.d", "MAKEFILE.D", "MakeFile.d"] {
        assert_eq!(
            fs.lookup(&ctx(), NodeId(1), name(variant)).unwrap_err(),
            Errno::ENOENT,
            "{variant}"
        );
    }
    // The stored spelling keeps working, and a case variant cannot be created next to it
    // (the volume refuses it): the guest never holds two names for one directory.
    assert_eq!(
        fs.lookup(&ctx(), NodeId(1), name("Makefile.d"))
            .unwrap()
            .nodeid,
        stored.nodeid
    );
    assert_eq!(
        fs.mkdir(&ctx(), &cctx(), NodeId(1), name("makefile.D"), 0o755)
            .unwrap_err(),
        Errno::EEXIST
    );
}

#[test]
fn host_policy_passes_case_variants_through() {
    let (_tmp, fs) = backend(CasePolicy::Host);
    let stored = fs.lookup(&ctx(), NodeId(1), name("Makefile.d")).unwrap();
    let variant = fs.lookup(&ctx(), NodeId(1), name("MAKEFILE.D")).unwrap();
    assert_eq!(variant.nodeid, stored.nodeid);
}
