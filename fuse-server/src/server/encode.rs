//! Wire encoders: the backend's typed replies as `fuse-abi` structs, and the copy of a reply
//! struct into the handler's fixed reply buffer.

use std::time::Duration;

use fuse_abi::{Attr, AttrOut, Dirent, EntryOut, I32, OpenOut, OpenOutFlags, U32, U64};
use zerocopy::{Immutable, IntoBytes};

use crate::types::{AttrReply, DirEntry, Entry, FileAttr, OpenReply};

/// Copies `v` into the front of `out`.
pub(super) fn put<'o, T: IntoBytes + Immutable>(out: &'o mut [u8], v: &T) -> &'o [u8] {
    let bytes = v.as_bytes();
    match out.get_mut(..bytes.len()) {
        Some(dst) => {
            dst.copy_from_slice(bytes);
            dst
        }
        None => &[],
    }
}

/// Copies `a` then `b` into the front of `out`.
pub(super) fn put2<'o, A: IntoBytes + Immutable, B: IntoBytes + Immutable>(
    out: &'o mut [u8],
    a: &A,
    b: &B,
) -> &'o [u8] {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let total = a.len().saturating_add(b.len());
    let Some(dst) = out.get_mut(..total) else {
        return &[];
    };
    let (da, db) = dst.split_at_mut(a.len());
    da.copy_from_slice(a);
    db.copy_from_slice(b);
    dst
}

/// A timeout as wire seconds and nanoseconds.
pub(super) fn split_duration(d: Duration) -> (u64, u32) {
    (d.as_secs(), d.subsec_nanos())
}

/// Two's-complement reinterpretation (the wire carries signed seconds in a u64).
fn wrap_u64(v: i64) -> u64 {
    u64::from_ne_bytes(v.to_ne_bytes())
}

fn attr(a: &FileAttr) -> Attr {
    Attr {
        ino: U64::new(a.ino),
        size: U64::new(a.size),
        blocks: U64::new(a.blocks),
        atime: U64::new(wrap_u64(a.atime.sec)),
        mtime: U64::new(wrap_u64(a.mtime.sec)),
        ctime: U64::new(wrap_u64(a.ctime.sec)),
        atimensec: U32::new(a.atime.nsec),
        mtimensec: U32::new(a.mtime.nsec),
        ctimensec: U32::new(a.ctime.nsec),
        mode: U32::new(a.mode),
        nlink: U32::new(a.nlink),
        uid: U32::new(a.uid),
        gid: U32::new(a.gid),
        rdev: U32::new(a.rdev),
        blksize: U32::new(a.blksize),
        flags: U32::new(a.flags.bits()),
    }
}

/// The wire form of an [`Entry`].
pub(super) fn entry_out(e: &Entry) -> EntryOut {
    let (entry_secs, entry_nsecs) = split_duration(e.entry_timeout);
    let (attr_secs, attr_nsecs) = split_duration(e.attr_timeout);
    EntryOut {
        nodeid: U64::new(e.nodeid.0),
        generation: U64::new(e.generation),
        entry_valid: U64::new(entry_secs),
        attr_valid: U64::new(attr_secs),
        entry_valid_nsec: U32::new(entry_nsecs),
        attr_valid_nsec: U32::new(attr_nsecs),
        attr: attr(&e.attr),
    }
}

/// The wire form of an [`AttrReply`].
pub(super) fn attr_out(a: &AttrReply) -> AttrOut {
    let (secs, nsecs) = split_duration(a.timeout);
    AttrOut {
        attr_valid: U64::new(secs),
        attr_valid_nsec: U32::new(nsecs),
        dummy: U32::new(0),
        attr: attr(&a.attr),
    }
}

/// The wire form of an [`OpenReply`].
pub(super) fn open_out(o: &OpenReply) -> OpenOut {
    // PASSTHROUGH is never negotiated, so a backend's FOPEN_PASSTHROUGH cannot count.
    let flags = o.flags.difference(OpenOutFlags::PASSTHROUGH);
    OpenOut {
        fh: U64::new(o.fh.0),
        open_flags: U32::new(flags.bits()),
        backing_id: I32::new(0),
    }
}

/// The fixed part of a directory entry.
pub(super) fn dirent(d: &DirEntry<'_>) -> Dirent {
    Dirent {
        ino: U64::new(d.ino),
        off: U64::new(d.offset),
        namelen: U32::new(u32::try_from(d.name.len()).unwrap_or(u32::MAX)),
        typ: U32::new(d.typ),
    }
}
