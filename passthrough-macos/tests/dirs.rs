//! Directory handles: memory that does not grow with the directory, READDIR that continues,
//! rewinds and skips correctly, also while entries are removed.
#![cfg(target_os = "linux")]
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashSet;

use common::{Fixture, Sink, ctx, root};
use fuse_server::{FileSystem, Handle, NodeId};

/// The most a directory handle may hold besides its descriptors: the stream's buffer and one
/// name, with room to spare — and nothing per entry.
const HANDLE_BOUND: usize = 16 * 1024;

/// `dir` (in the share's root) with `n` entries of 40-byte names; its node id.
fn populate(fx: &Fixture, dir: &str, n: usize) -> NodeId {
    std::fs::create_dir(fx.host_path(dir)).unwrap();
    for i in 0..n {
        let name = format!("{dir}/entry-{i:05}-{}", "x".repeat(28));
        std::fs::write(fx.host_path(&name), b"").unwrap();
    }
    fx.lookup(root(), dir).unwrap().nodeid
}

/// READDIR of `fh` from `offset`, at most `cap` entries: (name, offset) pairs.
fn readdir(
    fx: &Fixture,
    nodeid: NodeId,
    fh: Handle,
    offset: u64,
    cap: usize,
) -> Vec<(String, u64)> {
    let mut sink = Sink::new(cap);
    fx.fs
        .readdir(&ctx(), nodeid, fh, offset, &mut sink)
        .unwrap();
    sink.entries
        .into_iter()
        .map(|e| (e.name, e.offset))
        .collect()
}

/// Every entry from `offset` on, in chunks of `chunk`, each READDIR continuing at the last
/// entry's offset (as the guest kernel does).
fn read_all(fx: &Fixture, nodeid: NodeId, fh: Handle, offset: u64, chunk: usize) -> Vec<String> {
    let mut names = Vec::new();
    let mut offset = offset;
    loop {
        let got = readdir(fx, nodeid, fh, offset, chunk);
        let Some(&(_, last)) = got.last() else {
            return names;
        };
        offset = last;
        names.extend(got.into_iter().map(|e| e.0));
    }
}

#[test]
fn directory_handles_hold_bounded_memory() {
    let fx = Fixture::new();
    let small = populate(&fx, "small", 3);
    let big = populate(&fx, "big", 5000);
    // The two directories' identities (the Linux adapter keeps a descriptor for each).
    let baseline = fx.fs.fd_budget().0;
    let mut handles = Vec::new();
    for i in 0..24 {
        let (nodeid, size) = if i % 8 == 0 { (small, 3) } else { (big, 5000) };
        let fh = fx.fs.opendir(&ctx(), nodeid, 0).unwrap().fh;
        // Some handles read a little, some everything, some through a rewind.
        let listed = match i % 3 {
            0 => readdir(&fx, nodeid, fh, 0, 10).len(),
            1 => read_all(&fx, nodeid, fh, 0, 97).len(),
            _ => {
                read_all(&fx, nodeid, fh, 0, 500);
                read_all(&fx, nodeid, fh, 0, 500).len()
            }
        };
        assert_eq!(listed, if i % 3 == 0 { size.min(10) } else { size });
        handles.push((nodeid, fh));
    }
    for &(_, fh) in &handles {
        let bytes = fx.fs.dir_handle_footprint(fh).unwrap();
        assert!(
            bytes <= HANDLE_BOUND,
            "a directory handle holds {bytes} bytes"
        );
    }
    // Each handle is one descriptor and one directory stream against the budget.
    assert_eq!(fx.fs.fd_budget().0, baseline + 2 * handles.len());
    for (nodeid, fh) in handles {
        fx.fs.releasedir(&ctx(), nodeid, fh, 0).unwrap();
    }
    assert_eq!(fx.fs.fd_budget().0, baseline);
}

#[test]
fn readdir_continues_rewinds_and_seeks() {
    let fx = Fixture::new();
    let dir = populate(&fx, "d", 1000);
    let fh = fx.fs.opendir(&ctx(), dir, 0).unwrap().fh;
    let all = read_all(&fx, dir, fh, 0, 37);
    assert_eq!(all.len(), 1000);
    assert_eq!(all.iter().collect::<HashSet<_>>().len(), 1000);
    // Offset 0 rewinds: the same listing again.
    assert_eq!(read_all(&fx, dir, fh, 0, 250), all);
    // Any other offset is the entry's index + 1: READDIR there (backwards or forwards from
    // where the handle is) lists from the next entry on.
    for offset in [500u64, 10, 999, 1, 700] {
        let got = readdir(&fx, dir, fh, offset, 3);
        let want: Vec<_> = all
            .iter()
            .skip(usize::try_from(offset).unwrap())
            .take(3)
            .cloned()
            .collect();
        let names: Vec<_> = got.iter().map(|e| e.0.clone()).collect();
        assert_eq!(names, want, "from offset {offset}");
        let offsets: Vec<_> = got.iter().map(|e| e.1).collect();
        let expected: Vec<_> = (offset + 1..).take(names.len()).collect();
        assert_eq!(offsets, expected, "from offset {offset}");
    }
    // Past the end: nothing.
    assert!(readdir(&fx, dir, fh, 1000, 10).is_empty());
    assert!(readdir(&fx, dir, fh, u64::MAX, 10).is_empty());
    fx.fs.releasedir(&ctx(), dir, fh, 0).unwrap();
}

#[test]
fn readdir_across_concurrent_unlinks() {
    let fx = Fixture::new();
    let dir = populate(&fx, "d", 600);
    let fh = fx.fs.opendir(&ctx(), dir, 0).unwrap().fh;
    let first = readdir(&fx, dir, fh, 0, 100);
    assert_eq!(first.len(), 100);
    let seen: HashSet<String> = first.iter().map(|e| e.0.clone()).collect();
    // Another process removes every other entry, some already listed, some not yet.
    let mut removed = HashSet::new();
    for i in (0..600).step_by(2) {
        let name = format!("entry-{i:05}-{}", "x".repeat(28));
        std::fs::remove_file(fx.host_path(&format!("d/{name}"))).unwrap();
        removed.insert(name);
    }
    let rest = read_all(&fx, dir, fh, first.last().unwrap().1, 41);
    let mut listed = seen.clone();
    for name in &rest {
        assert!(listed.insert(name.clone()), "{name} listed twice");
    }
    // Every entry that was never removed is listed exactly once; nothing else appears.
    for i in (1..600).step_by(2) {
        let name = format!("entry-{i:05}-{}", "x".repeat(28));
        assert!(listed.contains(&name), "{name} missing");
    }
    assert!(listed.iter().all(|n| n.starts_with("entry-")));
    // A rewind shows the directory as it is now.
    let now: HashSet<String> = read_all(&fx, dir, fh, 0, 64).into_iter().collect();
    assert_eq!(now.len(), 300);
    assert!(now.is_disjoint(&removed));
    fx.fs.releasedir(&ctx(), dir, fh, 0).unwrap();
}

#[test]
fn handles_past_the_kept_streams_still_list_correctly() {
    let fx = Fixture::with(|c| passthrough_macos::Config {
        max_dir_streams: 2,
        ..c
    });
    let dir = populate(&fx, "d", 300);
    let handles: Vec<Handle> = (0..5)
        .map(|_| fx.fs.opendir(&ctx(), dir, 0).unwrap().fh)
        .collect();
    // Interleaved READDIRs, each handle continuing at its own offset.
    let mut offsets = vec![0u64; handles.len()];
    let mut listed = vec![Vec::new(); handles.len()];
    loop {
        let mut progressed = false;
        for (i, &fh) in handles.iter().enumerate() {
            let got = readdir(&fx, dir, fh, offsets[i], 23);
            if let Some(&(_, last)) = got.last() {
                offsets[i] = last;
                listed[i].extend(got.into_iter().map(|e| e.0));
                progressed = true;
            }
        }
        if !progressed {
            break;
        }
    }
    let want = read_all(&fx, dir, handles[0], 0, 300);
    assert_eq!(want.len(), 300);
    for names in &listed {
        assert_eq!(names, &want);
    }
    // Two handles keep a stream; the others hold none between READDIRs.
    let kept = handles
        .iter()
        .filter(|&&fh| fx.fs.dir_handle_footprint(fh).unwrap() > 1024)
        .count();
    assert_eq!(kept, 2);
    for fh in handles {
        fx.fs.releasedir(&ctx(), dir, fh, 0).unwrap();
    }
}
