//! POSIX (OFD-backed) locks and flock.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions

mod common;

use common::*;
use fuse_abi::Errno;
use fuse_server::{FileSystem, Handle, Lock, LockArgs, LockOwner, NodeId, ReleaseArgs};

const RD: u32 = 0;
const WR: u32 = 1;
const UN: u32 = 2;
const TO_END: u64 = i64::MAX as u64;

fn lock(typ: u32, start: u64, end: u64) -> Lock {
    Lock {
        start,
        end,
        typ,
        pid: 1,
    }
}

fn setup() -> (Fixture, NodeId, Handle, Handle) {
    let f = Fixture::with(|b| b.flock_locks(true));
    let (e, fh1) = f.create(ROOT, "f", 0o644, libc::O_RDWR as u32).unwrap();
    let fh2 = f.open(e.nodeid, libc::O_RDWR as u32).unwrap();
    (f, e.nodeid, fh1, fh2)
}

#[test]
fn setlk_conflicting_owners_is_eagain() {
    let (f, n, fh1, fh2) = setup();
    f.fs.setlk(
        &ctx(),
        n,
        &LockArgs::new(fh1, LockOwner(1), lock(WR, 0, 99)),
    )
    .unwrap();
    let r = f.fs.setlk(
        &ctx(),
        n,
        &LockArgs::new(fh2, LockOwner(2), lock(WR, 50, 60)),
    );
    assert_eq!(r.unwrap_err(), Errno::EAGAIN);
}

#[test]
fn setlk_same_owner_through_two_handles_does_not_conflict() {
    let (f, n, fh1, fh2) = setup();
    f.fs.setlk(
        &ctx(),
        n,
        &LockArgs::new(fh1, LockOwner(1), lock(WR, 0, 99)),
    )
    .unwrap();
    f.fs.setlk(
        &ctx(),
        n,
        &LockArgs::new(fh2, LockOwner(1), lock(WR, 50, 60)),
    )
    .unwrap();
}

#[test]
fn getlk_reports_the_conflicting_range() {
    let (f, n, fh1, fh2) = setup();
    f.fs.setlk(
        &ctx(),
        n,
        &LockArgs::new(fh1, LockOwner(1), lock(RD, 10, 19)),
    )
    .unwrap();
    let got =
        f.fs.getlk(
            &ctx(),
            n,
            &LockArgs::new(fh2, LockOwner(2), lock(WR, 0, TO_END)),
        )
        .unwrap();
    assert_eq!((got.typ, got.start, got.end), (RD, 10, 19));
    let free =
        f.fs.getlk(
            &ctx(),
            n,
            &LockArgs::new(fh2, LockOwner(2), lock(RD, 0, TO_END)),
        )
        .unwrap();
    assert_eq!(free.typ, UN);
}

#[test]
fn unlock_then_other_owner_locks() {
    let (f, n, fh1, fh2) = setup();
    f.fs.setlk(
        &ctx(),
        n,
        &LockArgs::new(fh1, LockOwner(1), lock(WR, 0, TO_END)),
    )
    .unwrap();
    f.fs.setlk(
        &ctx(),
        n,
        &LockArgs::new(fh1, LockOwner(1), lock(UN, 0, TO_END)),
    )
    .unwrap();
    f.fs.setlk(
        &ctx(),
        n,
        &LockArgs::new(fh2, LockOwner(2), lock(WR, 0, TO_END)),
    )
    .unwrap();
}

#[test]
fn flush_drops_the_owners_locks() {
    let (f, n, fh1, fh2) = setup();
    f.fs.setlk(
        &ctx(),
        n,
        &LockArgs::new(fh1, LockOwner(1), lock(WR, 0, TO_END)),
    )
    .unwrap();
    f.fs.flush(&ctx(), n, fh1, LockOwner(1)).unwrap();
    f.fs.setlk(
        &ctx(),
        n,
        &LockArgs::new(fh2, LockOwner(2), lock(WR, 0, TO_END)),
    )
    .unwrap();
}

/// A sleeping request tries once: EAGAIN ("ask again", the server makes it pending) while
/// the lock is held, granted once it is free.
#[test]
fn setlkw_tries_once_and_is_granted_once_free() {
    let (f, n, fh1, fh2) = setup();
    f.fs.setlk(
        &ctx(),
        n,
        &LockArgs::new(fh1, LockOwner(1), lock(WR, 0, TO_END)),
    )
    .unwrap();
    let wait = LockArgs::new(fh2, LockOwner(2), lock(WR, 0, TO_END)).with_sleep(true);
    assert_eq!(f.fs.setlk(&ctx(), n, &wait).unwrap_err(), Errno::EAGAIN);
    f.fs.setlk(
        &ctx(),
        n,
        &LockArgs::new(fh1, LockOwner(1), lock(UN, 0, TO_END)),
    )
    .unwrap();
    f.fs.setlk(&ctx(), n, &wait).unwrap();
    // flock alike.
    let flock = LockArgs::new(fh1, LockOwner(1), lock(WR, 0, TO_END))
        .with_flock(true)
        .with_sleep(true);
    f.fs.setlk(&ctx(), n, &flock).unwrap();
    let other = LockArgs::new(fh2, LockOwner(1), lock(WR, 0, TO_END))
        .with_flock(true)
        .with_sleep(true);
    assert_eq!(f.fs.setlk(&ctx(), n, &other).unwrap_err(), Errno::EAGAIN);
}

#[test]
fn flock_is_per_open_file() {
    let (f, n, fh1, fh2) = setup();
    f.fs.setlk(
        &ctx(),
        n,
        &LockArgs::new(fh1, LockOwner(1), lock(WR, 0, TO_END)).with_flock(true),
    )
    .unwrap();
    let r = f.fs.setlk(
        &ctx(),
        n,
        &LockArgs::new(fh2, LockOwner(1), lock(RD, 0, TO_END)).with_flock(true),
    );
    assert_eq!(r.unwrap_err(), Errno::EAGAIN);
    f.fs.release(
        &ctx(),
        n,
        &ReleaseArgs::new(fh1).with_flock_release(LockOwner(1)),
    )
    .unwrap();
    f.fs.setlk(
        &ctx(),
        n,
        &LockArgs::new(fh2, LockOwner(1), lock(RD, 0, TO_END)).with_flock(true),
    )
    .unwrap();
}

#[test]
fn lock_with_bad_type_or_range_is_einval() {
    let (f, n, fh1, _) = setup();
    assert_eq!(
        f.fs.setlk(&ctx(), n, &LockArgs::new(fh1, LockOwner(1), lock(7, 0, 1)))
            .unwrap_err(),
        Errno::EINVAL
    );
    assert_eq!(
        f.fs.setlk(
            &ctx(),
            n,
            &LockArgs::new(fh1, LockOwner(1), lock(WR, 10, 5))
        )
        .unwrap_err(),
        Errno::EINVAL
    );
}

/// A guest OFD lock: its owner is the guest's open file, so no FLUSH ever names it, and
/// RELEASE of the handle is what ends it (issue 14, generic/478).
#[test]
fn release_drops_the_descriptions_used_through_the_handle() {
    let (f, n, fh1, fh2) = setup();
    f.fs.setlk(
        &ctx(),
        n,
        &LockArgs::new(fh1, LockOwner(0x1111), lock(WR, 0, TO_END)),
    )
    .unwrap();
    assert_eq!(f.fs.lock_fds_in_use(), 1);
    // The guest closes the file: FLUSH carries the process's owner, not the lock's.
    f.fs.flush(&ctx(), n, fh1, LockOwner(0x2222)).unwrap();
    assert_eq!(
        f.fs.setlk(
            &ctx(),
            n,
            &LockArgs::new(fh2, LockOwner(0x3333), lock(WR, 0, TO_END)),
        )
        .unwrap_err(),
        Errno::EAGAIN
    );
    f.fs.release(&ctx(), n, &ReleaseArgs::new(fh1)).unwrap();
    f.fs.setlk(
        &ctx(),
        n,
        &LockArgs::new(fh2, LockOwner(0x3333), lock(UN, 0, TO_END)),
    )
    .unwrap();
    assert_eq!(
        f.fs.lock_fds_in_use(),
        1,
        "only owner Y's description is left"
    );
    f.fs.setlk(
        &ctx(),
        n,
        &LockArgs::new(fh2, LockOwner(0x3333), lock(WR, 0, TO_END)),
    )
    .unwrap();
    f.fs.release(&ctx(), n, &ReleaseArgs::new(fh2)).unwrap();
    assert_eq!(f.fs.lock_fds_in_use(), 0);
}

/// A process's POSIX lock through one handle survives the RELEASE of another handle it never
/// locked through.
#[test]
fn release_keeps_descriptions_used_through_other_handles() {
    let (f, n, fh1, fh2) = setup();
    f.fs.setlk(
        &ctx(),
        n,
        &LockArgs::new(fh1, LockOwner(1), lock(WR, 0, TO_END)),
    )
    .unwrap();
    f.fs.release(&ctx(), n, &ReleaseArgs::new(fh2)).unwrap();
    assert_eq!(f.fs.lock_fds_in_use(), 1);
    let fh3 = f.open(n, libc::O_RDWR as u32).unwrap();
    assert_eq!(
        f.fs.setlk(
            &ctx(),
            n,
            &LockArgs::new(fh3, LockOwner(2), lock(WR, 0, TO_END)),
        )
        .unwrap_err(),
        Errno::EAGAIN
    );
}
