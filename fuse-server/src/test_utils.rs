//! Test backends (feature `test-utils`): [`TestFs`] answers every operation with a plausible
//! success and, when recording, logs each call; plus helpers to build requests.
//!
//! - [`NullFs`]: `TestFs::null(caps)`, no recording (fuzzing, benches);
//! - [`RecordingFs`]: `TestFs::recording(caps)`, every call is logged as a [`Call`].
//!
//! READ and WRITE move data through a backing file when one is set with [`TestFs::with_file`]
//! (through the zero-copy traits, as a real backend does); otherwise READ returns 0 bytes and
//! WRITE consumes nothing and reports `size`.

use std::ffi::CStr;
use std::fs::File;
use std::os::fd::AsFd;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use fuse_abi::{Errno, InHeader, InitFlags, OpenInFlags, RenameFlags, SetxattrFlags, WriteFlags};
use zerocopy::IntoBytes;

use crate::io::{ZeroCopyReader, ZeroCopyWriter};
use crate::types::*;
use crate::{Capabilities, FileSystem, FsResult};

/// One backend call as [`RecordingFs`] saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Call {
    /// The `FileSystem` method name (`"lookup"`, `"batch_forget"`, ...).
    pub method: &'static str,
    /// The node id (or parent directory) the call was about.
    pub nodeid: u64,
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

    fn rec(
        &self,
        method: &'static str,
        ctx: &Context,
        nodeid: u64,
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

    fn entry(&self, mode: u32) -> Entry {
        let nodeid = self.next_node.fetch_add(1, Ordering::Relaxed);
        Entry {
            nodeid,
            generation: 1,
            attr: FileAttr {
                ino: nodeid,
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

const DIR: u32 = fuse_abi::mode::S_IFDIR | 0o755;
const REG: u32 = fuse_abi::mode::S_IFREG | 0o644;

impl FileSystem for TestFs {
    fn capabilities(&self) -> Capabilities {
        self.caps
    }

    fn init(&self, negotiated: &Negotiated) -> FsResult<()> {
        self.inits.fetch_add(1, Ordering::Relaxed);
        self.rec(
            "init",
            &Context::default(),
            0,
            format_args!("{negotiated:?}"),
        );
        Ok(())
    }

    fn destroy(&self) {
        self.destroys.fetch_add(1, Ordering::Relaxed);
        self.rec("destroy", &Context::default(), 0, format_args!(""));
    }

    fn lookup(&self, ctx: &Context, parent: u64, name: Name<'_>) -> FsResult<Entry> {
        self.rec("lookup", ctx, parent, format_args!("{name:?}"));
        Ok(self.entry(REG))
    }

    fn forget(&self, ctx: &Context, nodeid: u64, nlookup: u64) {
        self.rec("forget", ctx, nodeid, format_args!("{nlookup}"));
    }

    fn batch_forget(&self, ctx: &Context, forgets: &mut dyn Iterator<Item = (u64, u64)>) {
        let all: Vec<(u64, u64)> = if self.record {
            forgets.collect()
        } else {
            Vec::new()
        };
        self.rec("batch_forget", ctx, 0, format_args!("{all:?}"));
    }

    fn getattr(&self, ctx: &Context, nodeid: u64, fh: Option<u64>) -> FsResult<AttrReply> {
        self.rec("getattr", ctx, nodeid, format_args!("{fh:?}"));
        Ok(AttrReply {
            attr: self.entry(DIR).attr,
            timeout: Duration::from_secs(1),
        })
    }

    fn setattr(&self, ctx: &Context, nodeid: u64, attr: &SetAttr) -> FsResult<AttrReply> {
        self.rec("setattr", ctx, nodeid, format_args!("{attr:?}"));
        Ok(AttrReply {
            attr: self.entry(REG).attr,
            timeout: Duration::from_secs(1),
        })
    }

    fn statx(
        &self,
        ctx: &Context,
        nodeid: u64,
        fh: Option<u64>,
        flags: u32,
        mask: u32,
    ) -> FsResult<StatxReply> {
        self.rec(
            "statx",
            ctx,
            nodeid,
            format_args!("{fh:?} {flags:#x} {mask:#x}"),
        );
        Ok(StatxReply::default())
    }

    fn readlink(&self, ctx: &Context, nodeid: u64, buf: &mut [u8]) -> FsResult<usize> {
        self.rec("readlink", ctx, nodeid, format_args!(""));
        let target = b"target";
        let dst = buf.get_mut(..target.len()).ok_or(Errno::ERANGE)?;
        dst.copy_from_slice(target);
        Ok(target.len())
    }

    fn symlink(
        &self,
        ctx: &Context,
        cctx: &CreateContext<'_>,
        parent: u64,
        name: Name<'_>,
        target: &CStr,
    ) -> FsResult<Entry> {
        self.rec(
            "symlink",
            ctx,
            parent,
            format_args!("{name:?} {target:?} {cctx:?}"),
        );
        Ok(self.entry(fuse_abi::mode::S_IFLNK | 0o777))
    }

    fn mknod(
        &self,
        ctx: &Context,
        cctx: &CreateContext<'_>,
        parent: u64,
        name: Name<'_>,
        mode: u32,
        rdev: u32,
    ) -> FsResult<Entry> {
        self.rec(
            "mknod",
            ctx,
            parent,
            format_args!("{name:?} {mode:o} {rdev} {cctx:?}"),
        );
        Ok(self.entry(mode))
    }

    fn mkdir(
        &self,
        ctx: &Context,
        cctx: &CreateContext<'_>,
        parent: u64,
        name: Name<'_>,
        mode: u32,
    ) -> FsResult<Entry> {
        self.rec(
            "mkdir",
            ctx,
            parent,
            format_args!("{name:?} {mode:o} {cctx:?}"),
        );
        Ok(self.entry(DIR))
    }

    fn unlink(&self, ctx: &Context, parent: u64, name: Name<'_>) -> FsResult<()> {
        self.rec("unlink", ctx, parent, format_args!("{name:?}"));
        Ok(())
    }

    fn rmdir(&self, ctx: &Context, parent: u64, name: Name<'_>) -> FsResult<()> {
        self.rec("rmdir", ctx, parent, format_args!("{name:?}"));
        Ok(())
    }

    fn rename(
        &self,
        ctx: &Context,
        olddir: u64,
        oldname: Name<'_>,
        newdir: u64,
        newname: Name<'_>,
        flags: RenameFlags,
    ) -> FsResult<()> {
        self.rec(
            "rename",
            ctx,
            olddir,
            format_args!("{oldname:?} {newdir} {newname:?} {flags:?}"),
        );
        Ok(())
    }

    fn link(
        &self,
        ctx: &Context,
        nodeid: u64,
        newparent: u64,
        newname: Name<'_>,
    ) -> FsResult<Entry> {
        self.rec("link", ctx, nodeid, format_args!("{newparent} {newname:?}"));
        Ok(self.entry(REG))
    }

    fn open(
        &self,
        ctx: &Context,
        nodeid: u64,
        flags: u32,
        open_flags: OpenInFlags,
    ) -> FsResult<OpenReply> {
        self.rec(
            "open",
            ctx,
            nodeid,
            format_args!("{flags:#o} {open_flags:?}"),
        );
        Ok(OpenReply {
            fh: 7,
            ..OpenReply::default()
        })
    }

    fn create(
        &self,
        ctx: &Context,
        cctx: &CreateContext<'_>,
        parent: u64,
        name: Name<'_>,
        mode: u32,
        flags: u32,
        open_flags: OpenInFlags,
    ) -> FsResult<(Entry, OpenReply)> {
        self.rec(
            "create",
            ctx,
            parent,
            format_args!("{name:?} {mode:o} {flags:#o} {open_flags:?} {cctx:?}"),
        );
        Ok((
            self.entry(REG),
            OpenReply {
                fh: 8,
                ..OpenReply::default()
            },
        ))
    }

    fn tmpfile(
        &self,
        ctx: &Context,
        cctx: &CreateContext<'_>,
        parent: u64,
        mode: u32,
        flags: u32,
    ) -> FsResult<(Entry, OpenReply)> {
        self.rec(
            "tmpfile",
            ctx,
            parent,
            format_args!("{mode:o} {flags:#o} {cctx:?}"),
        );
        Ok((
            self.entry(REG),
            OpenReply {
                fh: 9,
                ..OpenReply::default()
            },
        ))
    }

    fn read(
        &self,
        ctx: &Context,
        nodeid: u64,
        fh: u64,
        w: &mut dyn ZeroCopyWriter,
        size: u32,
        offset: u64,
        lock_owner: Option<u64>,
        flags: u32,
    ) -> FsResult<usize> {
        self.rec(
            "read",
            ctx,
            nodeid,
            format_args!("{fh} {size} {offset} {lock_owner:?} {flags:#o}"),
        );
        match &self.file {
            Some(f) => w
                .write_from(
                    f.as_fd(),
                    usize::try_from(size).unwrap_or(usize::MAX),
                    offset,
                )
                .map_err(|_| Errno::EIO),
            None => Ok(0),
        }
    }

    fn write(
        &self,
        ctx: &Context,
        nodeid: u64,
        fh: u64,
        r: &mut dyn ZeroCopyReader,
        size: u32,
        offset: u64,
        lock_owner: Option<u64>,
        write_flags: WriteFlags,
        flags: u32,
    ) -> FsResult<usize> {
        self.rec(
            "write",
            ctx,
            nodeid,
            format_args!("{fh} {size} {offset} {lock_owner:?} {write_flags:?} {flags:#o}"),
        );
        let size = usize::try_from(size).unwrap_or(usize::MAX);
        match &self.file {
            Some(f) => r.read_to(f.as_fd(), size, offset).map_err(|_| Errno::EIO),
            None => Ok(size),
        }
    }

    fn flush(&self, ctx: &Context, nodeid: u64, fh: u64, lock_owner: u64) -> FsResult<()> {
        self.rec("flush", ctx, nodeid, format_args!("{fh} {lock_owner}"));
        Ok(())
    }

    fn release(
        &self,
        ctx: &Context,
        nodeid: u64,
        fh: u64,
        flags: u32,
        flush: bool,
        flock_release: bool,
        lock_owner: Option<u64>,
    ) -> FsResult<()> {
        self.rec(
            "release",
            ctx,
            nodeid,
            format_args!("{fh} {flags:#o} {flush} {flock_release} {lock_owner:?}"),
        );
        Ok(())
    }

    fn fsync(&self, ctx: &Context, nodeid: u64, fh: u64, datasync: bool) -> FsResult<()> {
        self.rec("fsync", ctx, nodeid, format_args!("{fh} {datasync}"));
        Ok(())
    }

    fn opendir(&self, ctx: &Context, nodeid: u64, flags: u32) -> FsResult<OpenReply> {
        self.rec("opendir", ctx, nodeid, format_args!("{flags:#o}"));
        Ok(OpenReply {
            fh: 10,
            ..OpenReply::default()
        })
    }

    fn readdir(
        &self,
        ctx: &Context,
        nodeid: u64,
        fh: u64,
        offset: u64,
        sink: &mut dyn DirSink,
    ) -> FsResult<()> {
        self.rec("readdir", ctx, nodeid, format_args!("{fh} {offset}"));
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

    fn readdirplus(
        &self,
        ctx: &Context,
        nodeid: u64,
        fh: u64,
        offset: u64,
        sink: &mut dyn DirPlusSink,
    ) -> FsResult<()> {
        self.rec("readdirplus", ctx, nodeid, format_args!("{fh} {offset}"));
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

    fn releasedir(&self, ctx: &Context, nodeid: u64, fh: u64, flags: u32) -> FsResult<()> {
        self.rec("releasedir", ctx, nodeid, format_args!("{fh} {flags:#o}"));
        Ok(())
    }

    fn fsyncdir(&self, ctx: &Context, nodeid: u64, fh: u64, datasync: bool) -> FsResult<()> {
        self.rec("fsyncdir", ctx, nodeid, format_args!("{fh} {datasync}"));
        Ok(())
    }

    fn statfs(&self, ctx: &Context, nodeid: u64) -> FsResult<StatFs> {
        self.rec("statfs", ctx, nodeid, format_args!(""));
        Ok(StatFs {
            bsize: 4096,
            namelen: 255,
            frsize: 4096,
            ..StatFs::default()
        })
    }

    fn setxattr(
        &self,
        ctx: &Context,
        nodeid: u64,
        name: &CStr,
        value: &[u8],
        flags: u32,
        setxattr_flags: SetxattrFlags,
    ) -> FsResult<()> {
        self.rec(
            "setxattr",
            ctx,
            nodeid,
            format_args!("{name:?} {value:?} {flags} {setxattr_flags:?}"),
        );
        Ok(())
    }

    fn getxattr(
        &self,
        ctx: &Context,
        nodeid: u64,
        name: &CStr,
        buf: &mut [u8],
    ) -> FsResult<XattrReply> {
        self.rec(
            "getxattr",
            ctx,
            nodeid,
            format_args!("{name:?} {}", buf.len()),
        );
        xattr_value(b"value", buf)
    }

    fn listxattr(&self, ctx: &Context, nodeid: u64, buf: &mut [u8]) -> FsResult<XattrReply> {
        self.rec("listxattr", ctx, nodeid, format_args!("{}", buf.len()));
        xattr_value(b"user.a\0", buf)
    }

    fn removexattr(&self, ctx: &Context, nodeid: u64, name: &CStr) -> FsResult<()> {
        self.rec("removexattr", ctx, nodeid, format_args!("{name:?}"));
        Ok(())
    }

    fn access(&self, ctx: &Context, nodeid: u64, mask: u32) -> FsResult<()> {
        self.rec("access", ctx, nodeid, format_args!("{mask:#o}"));
        Ok(())
    }

    fn getlk(&self, ctx: &Context, nodeid: u64, fh: u64, owner: u64, lock: Lock) -> FsResult<Lock> {
        self.rec("getlk", ctx, nodeid, format_args!("{fh} {owner} {lock:?}"));
        Ok(Lock { typ: 2, ..lock })
    }

    fn setlk(
        &self,
        ctx: &Context,
        nodeid: u64,
        fh: u64,
        owner: u64,
        lock: Lock,
        sleep: bool,
        flock: bool,
    ) -> FsResult<()> {
        let method = if sleep { "setlkw" } else { "setlk" };
        self.rec(
            method,
            ctx,
            nodeid,
            format_args!("{fh} {owner} {lock:?} {flock}"),
        );
        Ok(())
    }

    fn bmap(&self, ctx: &Context, nodeid: u64, blocksize: u32, block: u64) -> FsResult<u64> {
        self.rec("bmap", ctx, nodeid, format_args!("{blocksize} {block}"));
        Ok(block)
    }

    fn ioctl(
        &self,
        ctx: &Context,
        nodeid: u64,
        fh: u64,
        cmd: u32,
        arg: u64,
        input: &[u8],
        out: &mut [u8],
    ) -> FsResult<(i32, usize)> {
        self.rec(
            "ioctl",
            ctx,
            nodeid,
            format_args!("{fh} {cmd:#x} {arg:#x} {input:?}"),
        );
        let n = input.len().min(out.len());
        if let (Some(dst), Some(src)) = (out.get_mut(..n), input.get(..n)) {
            dst.copy_from_slice(src);
        }
        Ok((0, n))
    }

    fn poll(
        &self,
        ctx: &Context,
        nodeid: u64,
        fh: u64,
        kh: u64,
        flags: u32,
        events: u32,
    ) -> FsResult<u32> {
        self.rec(
            "poll",
            ctx,
            nodeid,
            format_args!("{fh} {kh} {flags:#x} {events:#x}"),
        );
        Ok(events)
    }

    fn fallocate(
        &self,
        ctx: &Context,
        nodeid: u64,
        fh: u64,
        mode: u32,
        offset: u64,
        length: u64,
    ) -> FsResult<()> {
        self.rec(
            "fallocate",
            ctx,
            nodeid,
            format_args!("{fh} {mode:#x} {offset} {length}"),
        );
        Ok(())
    }

    fn lseek(
        &self,
        ctx: &Context,
        nodeid: u64,
        fh: u64,
        offset: u64,
        whence: u32,
    ) -> FsResult<u64> {
        self.rec("lseek", ctx, nodeid, format_args!("{fh} {offset} {whence}"));
        Ok(offset)
    }

    fn copy_file_range(
        &self,
        ctx: &Context,
        nodeid_in: u64,
        fh_in: u64,
        off_in: u64,
        nodeid_out: u64,
        fh_out: u64,
        off_out: u64,
        len: u64,
        flags: u64,
    ) -> FsResult<u64> {
        self.rec(
            "copy_file_range",
            ctx,
            nodeid_in,
            format_args!("{fh_in} {off_in} {nodeid_out} {fh_out} {off_out} {len} {flags:#x}"),
        );
        Ok(len)
    }

    fn setupmapping(
        &self,
        ctx: &Context,
        nodeid: u64,
        fh: u64,
        foffset: u64,
        len: u64,
        flags: u64,
        moffset: u64,
    ) -> FsResult<()> {
        self.rec(
            "setupmapping",
            ctx,
            nodeid,
            format_args!("{fh:#x} {foffset} {len} {flags:#x} {moffset}"),
        );
        Ok(())
    }

    fn removemapping(
        &self,
        ctx: &Context,
        ranges: &mut dyn Iterator<Item = (u64, u64)>,
    ) -> FsResult<()> {
        let all: Vec<(u64, u64)> = if self.record {
            ranges.collect()
        } else {
            Vec::new()
        };
        self.rec("removemapping", ctx, 0, format_args!("{all:?}"));
        Ok(())
    }

    fn syncfs(&self, ctx: &Context, nodeid: u64) -> FsResult<()> {
        self.rec("syncfs", ctx, nodeid, format_args!(""));
        Ok(())
    }
}

fn skip(offset: u64) -> usize {
    usize::try_from(offset).unwrap_or(usize::MAX)
}

fn xattr_value(value: &[u8], buf: &mut [u8]) -> FsResult<XattrReply> {
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

/// Builds a request: a header with `len` filled in, then `args`.
pub fn request(opcode: u32, unique: u64, nodeid: u64, args: &[u8]) -> Vec<u8> {
    request_ext(opcode, unique, nodeid, args, &[])
}

/// Builds a request with request extensions (`ext.len()` must be a multiple of 8).
pub fn request_ext(opcode: u32, unique: u64, nodeid: u64, args: &[u8], ext: &[u8]) -> Vec<u8> {
    let len = 40usize.saturating_add(args.len()).saturating_add(ext.len());
    let hdr = InHeader {
        len: fuse_abi::U32::new(u32::try_from(len).unwrap_or(u32::MAX)),
        opcode: fuse_abi::U32::new(opcode),
        unique: fuse_abi::U64::new(unique),
        nodeid: fuse_abi::U64::new(nodeid),
        uid: fuse_abi::U32::new(1000),
        gid: fuse_abi::U32::new(1000),
        pid: fuse_abi::U32::new(42),
        total_extlen: fuse_abi::U16::new(u16::try_from(ext.len() / 8).unwrap_or(u16::MAX)),
        padding: fuse_abi::U16::new(0),
    };
    let mut v = Vec::with_capacity(len);
    v.extend_from_slice(hdr.as_bytes());
    v.extend_from_slice(args);
    v.extend_from_slice(ext);
    v
}

/// The INIT payload a kernel of `minor` sends with `flags` (64 bytes, INIT_EXT as needed).
pub fn init_payload(minor: u32, flags: InitFlags, max_readahead: u32) -> Vec<u8> {
    let (f, f2) = flags.to_wire();
    let init = fuse_abi::InitIn {
        major: fuse_abi::U32::new(7),
        minor: fuse_abi::U32::new(minor),
        max_readahead: fuse_abi::U32::new(max_readahead),
        flags: fuse_abi::U32::new(f),
        flags2: fuse_abi::U32::new(f2),
        ..fuse_abi::InitIn::default()
    };
    init.as_bytes().to_vec()
}

fn bytes_of<T: IntoBytes + zerocopy::Immutable>(v: &T) -> Vec<u8> {
    v.as_bytes().to_vec()
}

fn with_tail(mut head: Vec<u8>, tail: &[u8]) -> Vec<u8> {
    head.extend_from_slice(tail);
    head
}

/// Well-formed arguments (everything after the header) for each opcode, as a Linux kernel
/// would send them with every flag negotiated (SETXATTR_EXT included). Names are `a`/`b`.
pub fn sample_args(op: fuse_abi::Opcode) -> Vec<u8> {
    use fuse_abi::Opcode as O;
    use fuse_abi::*;
    match op {
        O::Lookup | O::Unlink | O::Rmdir => b"a\0".to_vec(),
        O::Forget => bytes_of(&ForgetIn {
            nlookup: U64::new(1),
        }),
        O::Getattr => bytes_of(&GetattrIn::default()),
        O::Setattr => bytes_of(&SetattrIn {
            valid: U32::new(SetattrValid::MODE.bits()),
            mode: U32::new(0o600),
            ..SetattrIn::default()
        }),
        O::Readlink | O::Statfs | O::Destroy => Vec::new(),
        O::Symlink => b"a\0target\0".to_vec(),
        O::Mknod => with_tail(
            bytes_of(&MknodIn {
                mode: U32::new(fuse_abi::mode::S_IFIFO | 0o644),
                umask: U32::new(0o022),
                ..MknodIn::default()
            }),
            b"a\0",
        ),
        O::Mkdir => with_tail(
            bytes_of(&MkdirIn {
                mode: U32::new(0o755),
                umask: U32::new(0o022),
            }),
            b"a\0",
        ),
        O::Rename => with_tail(
            bytes_of(&RenameIn {
                newdir: U64::new(1),
            }),
            b"a\0b\0",
        ),
        O::Rename2 => with_tail(
            bytes_of(&Rename2In {
                newdir: U64::new(1),
                flags: U32::new(RenameFlags::NOREPLACE.bits()),
                padding: U32::new(0),
            }),
            b"a\0b\0",
        ),
        O::Link => with_tail(
            bytes_of(&LinkIn {
                oldnodeid: U64::new(2),
            }),
            b"a\0",
        ),
        O::Open | O::Opendir => bytes_of(&OpenIn {
            flags: U32::new(2),
            open_flags: U32::new(0),
        }),
        O::Read | O::Readdir | O::Readdirplus => bytes_of(&ReadIn {
            size: U32::new(4096),
            ..ReadIn::default()
        }),
        O::Write => with_tail(
            bytes_of(&WriteIn {
                size: U32::new(4),
                ..WriteIn::default()
            }),
            b"data",
        ),
        O::Release | O::Releasedir => bytes_of(&ReleaseIn::default()),
        O::Fsync | O::Fsyncdir => bytes_of(&FsyncIn::default()),
        O::Setxattr => with_tail(
            bytes_of(&SetxattrIn {
                size: U32::new(3),
                ..SetxattrIn::default()
            }),
            b"user.a\0abc",
        ),
        O::Getxattr => with_tail(bytes_of(&GetxattrIn::default()), b"user.a\0"),
        O::Listxattr => bytes_of(&GetxattrIn {
            size: U32::new(100),
            padding: U32::new(0),
        }),
        O::Removexattr => b"user.a\0".to_vec(),
        O::Flush => bytes_of(&FlushIn::default()),
        O::Init => init_payload(46, InitFlags::all(), 131072),
        O::Getlk | O::Setlk | O::Setlkw => bytes_of(&LkIn::default()),
        O::Access => bytes_of(&AccessIn::default()),
        O::Create => with_tail(
            bytes_of(&CreateIn {
                flags: U32::new(0o100),
                mode: U32::new(fuse_abi::mode::S_IFREG | 0o644),
                umask: U32::new(0o022),
                open_flags: U32::new(0),
            }),
            b"a\0",
        ),
        O::Tmpfile => bytes_of(&CreateIn {
            flags: U32::new(2),
            mode: U32::new(fuse_abi::mode::S_IFREG | 0o600),
            umask: U32::new(0o022),
            open_flags: U32::new(0),
        }),
        O::Interrupt => bytes_of(&InterruptIn {
            unique: U64::new(2),
        }),
        O::Bmap => bytes_of(&BmapIn::default()),
        O::Ioctl => with_tail(
            bytes_of(&IoctlIn {
                in_size: U32::new(3),
                out_size: U32::new(3),
                ..IoctlIn::default()
            }),
            b"abc",
        ),
        O::Poll => bytes_of(&PollIn::default()),
        O::NotifyReply => bytes_of(&NotifyRetrieveIn::default()),
        O::BatchForget => {
            let mut v = bytes_of(&BatchForgetIn {
                count: U32::new(2),
                dummy: U32::new(0),
            });
            for n in [2u64, 3] {
                v.extend_from_slice(
                    ForgetOne {
                        nodeid: U64::new(n),
                        nlookup: U64::new(1),
                    }
                    .as_bytes(),
                );
            }
            v
        }
        O::Fallocate => bytes_of(&FallocateIn::default()),
        O::Lseek => bytes_of(&LseekIn::default()),
        O::CopyFileRange | O::CopyFileRange64 => bytes_of(&CopyFileRangeIn {
            len: U64::new(10),
            ..CopyFileRangeIn::default()
        }),
        O::Setupmapping => bytes_of(&SetupmappingIn::default()),
        O::Removemapping => {
            let mut v = bytes_of(&RemovemappingIn { count: U32::new(1) });
            v.extend_from_slice(RemovemappingOne::default().as_bytes());
            v
        }
        O::Syncfs => bytes_of(&SyncfsIn::default()),
        O::Statx => bytes_of(&StatxIn::default()),
        O::CuseInit => bytes_of(&CuseInitIn::default()),
    }
}
