//! The descriptor budget (CVE-2020-10717 class): OPENs without RELEASE run into `ENFILE` from the
//! backend's budget, well before the process's `RLIMIT_NOFILE`, and a RELEASE makes room again.
//!
//! Its own test binary: it lowers this process's descriptor limit (with `prlimit`) before the
//! backend starts, so that the default budget (derived from that limit) is small.
#![cfg(target_os = "linux")]
#![allow(clippy::unwrap_used)]

mod common;

use std::process::Command;

use common::{Fixture, root};
use fuse_abi::Errno;

const O_RDWR: u32 = 2;
const LIMIT: usize = 256;

#[test]
fn opens_without_release_hit_enfile_never_emfile() {
    let pid = std::process::id().to_string();
    let nofile = format!("--nofile={LIMIT}:{LIMIT}");
    let status = Command::new("prlimit")
        .args(["--pid", &pid, &nofile])
        .status()
        .unwrap();
    assert!(status.success());
    let fx = Fixture::new();
    let files = 2 * LIMIT;
    for i in 0..files {
        std::fs::write(fx.host_path(&format!("f{i}")), b"x").unwrap();
    }
    let mut open = Vec::new();
    let mut refused = None;
    for i in 0..files {
        let name = format!("f{i}");
        let result = fx
            .lookup(root(), &name)
            .and_then(|e| fx.open(e.nodeid, O_RDWR).map(|fh| (e.nodeid, fh)));
        match result {
            Ok(handle) => open.push(handle),
            Err(e) => {
                refused = Some((i, e));
                break;
            }
        }
    }
    let (at, errno) = refused.expect("no OPEN was refused");
    assert_eq!(errno, Errno::ENFILE, "refused at {at}");
    // The budget leaves a reserve: the process itself can still open descriptors.
    let spare: Vec<_> = (0..16)
        .map(|_| std::fs::File::open("/dev/null").unwrap())
        .collect();
    drop(spare);
    // RELEASEs give the descriptors back: the refused file needs one for its identity (the
    // Linux adapter's registry) and one for its handle.
    for (nodeid, fh) in open.drain(open.len() - 2..) {
        fx.release(nodeid, fh);
    }
    let e = fx.lookup(root(), &format!("f{at}"));
    let reopened = e.and_then(|e| fx.open(e.nodeid, O_RDWR));
    assert!(reopened.is_ok(), "{reopened:?}");
}
