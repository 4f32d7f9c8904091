//! A directory handle's memory does not grow with its directory (issue 11, item 6). Alone in
//! its test binary, so that no other test moves the process's resident size meanwhile.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

mod common;

use common::*;
use fuse_server::FileSystem;

/// The process's resident set, in bytes.
fn rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .unwrap()
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .unwrap();
    kb * 1024
}

#[test]
fn open_directory_handles_cost_less_than_a_page_each_on_a_big_directory() {
    let f = Fixture::new();
    std::fs::create_dir(f.host("big")).unwrap();
    // 3000 entries of 60-byte names: every getdents64 call can fill a whole buffer.
    for i in 0..3000 {
        std::fs::write(f.host(&format!("big/{i:060}")), b"").unwrap();
    }
    let d = f.lookup(ROOT, "big").unwrap().nodeid;
    let n = (f.fs.config().max_open_fds / 2).min(1000) as u64;
    // Warm up the per-thread state first.
    let fh = f.fs.opendir(&ctx(), d, 0).unwrap().fh;
    f.fs.readdir(&ctx(), d, fh, 0, &mut Sink::new(1)).unwrap();
    let before = rss();
    let mut fhs = Vec::new();
    for _ in 0..n {
        let fh = f.fs.opendir(&ctx(), d, 0).unwrap().fh;
        // One entry is asked for; the host is asked for a full buffer of them.
        let mut sink = Sink::new(1);
        f.fs.readdir(&ctx(), d, fh, 0, &mut sink).unwrap();
        assert_eq!(sink.entries.len(), 1);
        fhs.push(fh);
    }
    let grown = rss().saturating_sub(before);
    eprintln!("{n} directory handles: resident set +{grown} bytes");
    assert!(
        grown < n * 4096,
        "{n} directory handles grew the resident set by {grown} bytes ({} per handle)",
        grown / n
    );
    for fh in fhs {
        f.fs.releasedir(&ctx(), d, fh, 0).unwrap();
    }
}
