//! Placeholder: being written (the Linux adapter).
#![allow(missing_docs, unused_variables)]

use std::ffi::CStr;
use std::io;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::path::Path;

use super::{Host, HostDirent, HostId, HostResult, Node, SyncMode};
use crate::errno::DarwinErrno;
use crate::fallocate::HostFstore;
use crate::lock::HostFlock;
use crate::stat::HostStat;
use crate::statfs::HostStatfs;
use crate::time::HostTimespec;

#[derive(Debug, Default)]
pub struct LinuxHost;

const E: DarwinErrno = DarwinErrno::ENOSYS;

impl Host for LinuxHost {
    fn root(&self, path: &Path) -> HostResult<HostStat> { Err(E) }
    fn lstat(&self, node: Node<'_>) -> HostResult<HostStat> { Err(E) }
    fn open(&self, node: Node<'_>, flags: i32, mode: u16) -> HostResult<OwnedFd> { Err(E) }
    fn mkdir(&self, dir: HostId, name: &[u8], mode: u16) -> HostResult<()> { Err(E) }
    fn symlink(&self, target: &CStr, dir: HostId, name: &[u8]) -> HostResult<()> { Err(E) }
    fn readlink(&self, node: Node<'_>, buf: &mut [u8]) -> HostResult<usize> { Err(E) }
    fn unlink(&self, dir: HostId, name: &[u8]) -> HostResult<()> { Err(E) }
    fn rmdir(&self, dir: HostId, name: &[u8]) -> HostResult<()> { Err(E) }
    fn rename(&self, olddir: HostId, oldname: &[u8], newdir: HostId, newname: &[u8], flags: u32) -> HostResult<()> { Err(E) }
    fn link(&self, node: HostId, newdir: HostId, newname: &[u8]) -> HostResult<()> { Err(E) }
    fn chmod(&self, node: Node<'_>, mode: u16) -> HostResult<()> { Err(E) }
    fn utimens(&self, node: Node<'_>, times: &[HostTimespec; 2]) -> HostResult<()> { Err(E) }
    fn truncate(&self, fd: BorrowedFd<'_>, len: u64) -> HostResult<()> { Err(E) }
    fn getxattr(&self, node: Node<'_>, name: &CStr, buf: &mut [u8], options: i32) -> HostResult<usize> { Err(E) }
    fn setxattr(&self, node: Node<'_>, name: &CStr, value: &[u8], options: i32) -> HostResult<()> { Err(E) }
    fn listxattr(&self, node: Node<'_>, buf: &mut [u8], options: i32) -> HostResult<usize> { Err(E) }
    fn removexattr(&self, node: Node<'_>, name: &CStr, options: i32) -> HostResult<()> { Err(E) }
    fn pread(&self, fd: BorrowedFd<'_>, buf: &mut [u8], offset: u64) -> HostResult<usize> { Err(E) }
    fn pwrite(&self, fd: BorrowedFd<'_>, buf: &[u8], offset: u64) -> HostResult<usize> { Err(E) }
    fn lseek(&self, fd: BorrowedFd<'_>, offset: i64, whence: i32) -> HostResult<u64> { Err(E) }
    fn fsync(&self, fd: BorrowedFd<'_>, mode: SyncMode) -> HostResult<()> { Err(E) }
    fn preallocate(&self, fd: BorrowedFd<'_>, store: &HostFstore) -> HostResult<()> { Err(E) }
    fn punch_hole(&self, fd: BorrowedFd<'_>, offset: u64, len: u64) -> HostResult<()> { Err(E) }
    fn set_nocache(&self, fd: BorrowedFd<'_>) -> HostResult<()> { Err(E) }
    fn lock(&self, fd: BorrowedFd<'_>, cmd: i32, lock: &mut HostFlock) -> HostResult<()> { Err(E) }
    fn flock(&self, fd: BorrowedFd<'_>, operation: i32) -> HostResult<()> { Err(E) }
    fn statfs(&self, node: Node<'_>) -> HostResult<HostStatfs> { Err(E) }
    fn name_max(&self, node: Node<'_>) -> HostResult<u32> { Err(E) }
    fn case_sensitive(&self, dir: HostId) -> HostResult<bool> { Err(E) }
    fn stored_name(&self, dir: HostId, name: &[u8], buf: &mut [u8]) -> HostResult<usize> { Err(E) }
    fn read_dir(&self, fd: BorrowedFd<'_>, out: &mut Vec<HostDirent>) -> HostResult<()> { Err(E) }
    fn io_errno(&self, err: &io::Error) -> DarwinErrno { DarwinErrno::EIO }
}
