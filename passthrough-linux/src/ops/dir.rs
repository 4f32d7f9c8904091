//! Directories: OPENDIR, READDIR, READDIRPLUS (RELEASEDIR and FSYNCDIR are in `mod.rs`).
//!
//! Offsets are the host's own `d_off` cookies from `getdents64` on the handle's descriptor, so a
//! position stays valid while entries are added or removed (the host filesystem guarantees
//! what POSIX `telldir`/`seekdir` guarantee). Each call seeks to the guest's offset and reads
//! from there: the reply never depends on what an earlier call left buffered. A handle keeps
//! nothing but its descriptor: the entries are read into a buffer of the calling thread, so
//! a directory handle's memory does not grow with its directory.

use std::cell::RefCell;
use std::ffi::CStr;
use std::os::fd::AsFd;

use fuse_abi::Errno;
use fuse_server::{DirEntry, DirPlusSink, DirSink, Entry, FsResult, Handle, NodeId, OpenReply};

use crate::errno::errno;
use crate::handle::OpenHandle;
use crate::{PassthroughFs, sys};

/// Size of the per-thread getdents64 buffer.
const DIR_BUF: usize = 32 * 1024;

thread_local! {
    /// The calling thread's getdents64 buffer: directory handles own none.
    static DIR_BUF_OF_THREAD: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` with this thread's getdents64 buffer (a fresh one if it is in use already, which
/// only a nested READDIR on the same thread would do).
fn with_dir_buf<T>(f: impl FnOnce(&mut [u8]) -> T) -> T {
    DIR_BUF_OF_THREAD.with(|cell| match cell.try_borrow_mut() {
        Ok(mut buf) => {
            if buf.len() < DIR_BUF {
                buf.resize(DIR_BUF, 0);
            }
            f(&mut buf)
        }
        Err(_) => f(&mut vec![0u8; DIR_BUF]),
    })
}

/// One parsed `linux_dirent64`.
struct RawDirent<'a> {
    ino: u64,
    off: u64,
    typ: u8,
    /// The name as the record holds it, NUL-terminated (so a lookup needs no copy).
    name: &'a CStr,
}

/// Iterates over the records of a getdents64 buffer; stops at the first malformed one.
fn dirents(buf: &[u8]) -> impl Iterator<Item = RawDirent<'_>> {
    let mut pos = 0usize;
    std::iter::from_fn(move || {
        let rec = buf.get(pos..)?;
        let ino = u64::from_ne_bytes(rec.get(0..8)?.try_into().ok()?);
        let off = u64::from_ne_bytes(rec.get(8..16)?.try_into().ok()?);
        let reclen = usize::from(u16::from_ne_bytes(rec.get(16..18)?.try_into().ok()?));
        let typ = *rec.get(18)?;
        let name = CStr::from_bytes_until_nul(rec.get(19..reclen)?).ok()?;
        pos += reclen;
        Some(RawDirent {
            ino,
            off,
            typ,
            name,
        })
    })
}

impl PassthroughFs {
    pub(super) fn do_opendir(&self, nodeid: NodeId) -> FsResult<OpenReply> {
        let inode = self.inodes.get(nodeid)?;
        if !inode.is_dir() {
            return Err(Errno::ENOTDIR);
        }
        let dir_permit = self.dir_budget.acquire()?;
        let permit = self.budget.acquire()?;
        let file = self.open_io(&inode, libc::O_RDONLY | libc::O_DIRECTORY)?;
        let fh = self
            .handles
            .insert(OpenHandle::dir(inode, file, permit, dir_permit));
        Ok(OpenReply {
            fh,
            flags: self.cfg.cache.opendir_flags(),
        })
    }

    /// Calls `each` for the entries after `offset` until it returns false or the directory ends.
    fn walk_dir(
        &self,
        fh: Handle,
        offset: u64,
        mut each: impl FnMut(&OpenHandle, RawDirent<'_>) -> bool,
    ) -> FsResult<()> {
        let h = self.handles.get(fh)?;
        let Some(dir) = &h.dir else {
            return Err(Errno::ENOTDIR);
        };
        let _position = dir
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        with_dir_buf(|buf| {
            sys::lseek(h.file.as_fd(), offset, libc::SEEK_SET).map_err(errno)?;
            loop {
                let n = sys::getdents64(h.file.as_fd(), buf).map_err(errno)?;
                if n == 0 {
                    return Ok(());
                }
                for d in dirents(&buf[..n]) {
                    if !each(&h, d) {
                        return Ok(());
                    }
                }
            }
        })
    }

    pub(super) fn do_readdir(
        &self,
        fh: Handle,
        offset: u64,
        sink: &mut dyn DirSink,
    ) -> FsResult<()> {
        self.walk_dir(fh, offset, |_, d| {
            sink.add(DirEntry {
                ino: d.ino,
                offset: d.off,
                typ: u32::from(d.typ),
                name: d.name.to_bytes(),
            })
        })
    }

    pub(super) fn do_readdirplus(
        &self,
        fh: Handle,
        offset: u64,
        sink: &mut dyn DirPlusSink,
    ) -> FsResult<()> {
        self.walk_dir(fh, offset, |h, d| {
            let name = d.name.to_bytes();
            if !sink.fits(name.len()) {
                return false;
            }
            let dirent = DirEntry {
                ino: d.ino,
                offset: d.off,
                typ: u32::from(d.typ),
                name,
            };
            // "." and ".." carry no entry (node id 0: the kernel takes no reference); an entry
            // that vanished or cannot be held (descriptor budget) is sent as a plain name. The
            // lookup takes the name straight from the getdents64 buffer: nothing is allocated
            // per entry.
            let entry = if name == b"." || name == b".." {
                Entry::default()
            } else {
                self.lookup_in(h.file.as_fd(), d.name).unwrap_or_default()
            };
            let added = sink.add(dirent, &entry);
            if !added && entry.nodeid != NodeId::NONE {
                self.inodes.forget(entry.nodeid, 1);
            }
            added
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dirents_stops_at_truncated_record() {
        // A record claiming 40 bytes in a 24-byte buffer must not be read past the end.
        let mut buf = [0u8; 24];
        buf[16] = 40;
        assert_eq!(dirents(&buf).count(), 0);
    }

    #[test]
    fn dirents_yield_the_nul_terminated_name_in_place() {
        // One 24-byte record: ino 7, d_off 9, type 8 (DT_REG), "ab" and its NUL, padding.
        let mut buf = [0u8; 24];
        buf[0] = 7;
        buf[8] = 9;
        buf[16] = 24;
        buf[18] = 8;
        buf[19..21].copy_from_slice(b"ab");
        let got: Vec<_> = dirents(&buf)
            .map(|d| (d.ino, d.off, d.typ, d.name))
            .collect();
        assert_eq!(got, [(7, 9, 8, c"ab")]);
        // A name without its NUL ends the walk.
        buf[21..].fill(b'x');
        assert_eq!(dirents(&buf).count(), 0);
    }
}
