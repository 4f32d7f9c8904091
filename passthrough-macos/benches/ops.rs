//! Criterion benches of the macOS backend's metadata paths on its Linux adapter
//! (`cargo xtask bench macos`). The adapter is not the macOS host layer, so the figures show
//! the backend's own cost (tables, overrides, translations) over real system calls, not what
//! a Mac would measure.
//!
//! Cases:
//! - `lookup`: LOOKUP of an existing name, then FORGET (lstat + override xattr + tables);
//!   `host_lstat` beside it is a bare `symlink_metadata` of the same file.
//! - `getattr`: GETATTR of a held inode (lstat + override xattr by identity).
//! - `create_unlink`: CREATE (open, override stamp, lookup) then RELEASE and UNLINK.
//! - `write_read_4k`: a 4 KiB WRITE then READ through the zero-copy traits (host memory here).
//! - `readdir_100`: OPENDIR, READDIR of 100 entries (each regular file's override read for its
//!   type), RELEASEDIR.
#![allow(missing_docs, clippy::unwrap_used)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use fuse_abi::InitFlags;
use fuse_server::mem::{MemReader, MemWriter};
use fuse_server::{
    Context, CreateArgs, CreateContext, DirEntry, DirSink, FileSystem, Name, Negotiated, NodeId,
    OpenArgs, ReadArgs, ReleaseArgs, WriteArgs,
};
use passthrough_macos::host::LinuxHost;
use passthrough_macos::{Config, PassthroughFs};

const ROOT: NodeId = NodeId::ROOT;
const O_RDWR: u32 = 2;

fn backend() -> (tempfile::TempDir, PassthroughFs<LinuxHost>) {
    let tmp = tempfile::tempdir().unwrap();
    let fs = PassthroughFs::new(LinuxHost::default(), Config::new(tmp.path())).unwrap();
    fs.init(&Negotiated {
        minor: 46,
        flags: InitFlags::empty(),
        max_write: 1 << 20,
    })
    .unwrap();
    (tmp, fs)
}

fn name(s: &str) -> Name<'_> {
    Name::new(s.as_bytes()).unwrap()
}

struct Count(usize);

impl DirSink for Count {
    fn add(&mut self, _entry: DirEntry<'_>) -> bool {
        self.0 += 1;
        true
    }
}

fn metadata(c: &mut Criterion) {
    let ctx = Context::default();
    let cctx = CreateContext::default();
    let (tmp, fs) = backend();
    let (entry, open) = fs
        .create(
            &ctx,
            &cctx,
            ROOT,
            &CreateArgs::new(name("f"), 0o644, OpenArgs::new(O_RDWR)),
        )
        .unwrap();
    fs.release(&ctx, entry.nodeid, &ReleaseArgs::new(open.fh))
        .unwrap();

    c.bench_function("lookup", |b| {
        b.iter(|| {
            let e = fs.lookup(&ctx, ROOT, black_box(name("f"))).unwrap();
            fs.forget(&ctx, e.nodeid, 1);
        });
    });
    let path = tmp.path().join("f");
    c.bench_function("host_lstat", |b| {
        b.iter(|| std::fs::symlink_metadata(black_box(&path)).unwrap());
    });
    c.bench_function("getattr", |b| {
        b.iter(|| fs.getattr(&ctx, black_box(entry.nodeid), None).unwrap());
    });
    c.bench_function("create_unlink", |b| {
        b.iter(|| {
            let (e, o) = fs
                .create(
                    &ctx,
                    &cctx,
                    ROOT,
                    &CreateArgs::new(name("g"), 0o644, OpenArgs::new(O_RDWR)),
                )
                .unwrap();
            fs.release(&ctx, e.nodeid, &ReleaseArgs::new(o.fh)).unwrap();
            fs.unlink(&ctx, ROOT, name("g")).unwrap();
            fs.forget(&ctx, e.nodeid, 1);
        });
    });

    let fh = fs
        .open(&ctx, entry.nodeid, &OpenArgs::new(O_RDWR))
        .unwrap()
        .fh;
    let data = vec![0x5a_u8; 4096];
    let mut buf = vec![0u8; 4096];
    c.bench_function("write_read_4k", |b| {
        b.iter(|| {
            let mut r = MemReader::new(&data);
            let n = fs
                .write(&ctx, entry.nodeid, &WriteArgs::new(fh, 0, 4096), &mut r)
                .unwrap();
            assert_eq!(n, 4096);
            let mut w = MemWriter::new(&mut buf);
            let n = fs
                .read(&ctx, entry.nodeid, &ReadArgs::new(fh, 0, 4096), &mut w)
                .unwrap();
            assert_eq!(n, 4096);
        });
    });

    let d = fs.mkdir(&ctx, &cctx, ROOT, name("d"), 0o755).unwrap();
    for i in 0..100 {
        let n = format!("e{i}");
        let (e, o) = fs
            .create(
                &ctx,
                &cctx,
                d.nodeid,
                &CreateArgs::new(name(&n), 0o644, OpenArgs::new(O_RDWR)),
            )
            .unwrap();
        fs.release(&ctx, e.nodeid, &ReleaseArgs::new(o.fh)).unwrap();
    }
    c.bench_function("readdir_100", |b| {
        b.iter(|| {
            let fh = fs.opendir(&ctx, d.nodeid, 0).unwrap().fh;
            let mut count = Count(0);
            fs.readdir(&ctx, d.nodeid, fh, 0, &mut count).unwrap();
            assert_eq!(count.0, 100);
            fs.releasedir(&ctx, d.nodeid, fh, 0).unwrap();
        });
    });
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(50)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
}

criterion_group! {
    name = benches;
    config = config();
    targets = metadata
}
criterion_main!(benches);
