//! FUSE request arguments and reply bodies that several device tests build or read.

use fuse_abi::{CreateIn, EntryOut, FileLock, InitFlags, LkIn, OpenOut};
use fuse_server::test_utils::init_payload;
use zerocopy::{FromBytes, IntoBytes};

/// `F_WRLCK` in a [`lock`].
pub(crate) const WR: u32 = 1;
/// `F_UNLCK` in a [`lock`].
pub(crate) const UN: u32 = 2;

/// A NUL-terminated name.
pub(crate) fn name(s: &str) -> Vec<u8> {
    let mut v = s.as_bytes().to_vec();
    v.push(0);
    v
}

/// INIT at 7.46 offering every flag but the reserved one, 128 KiB of readahead.
pub(crate) fn init_offering_all() -> Vec<u8> {
    let offer = InitFlags::all().difference(InitFlags::INIT_RESERVED);
    init_payload(46, offer, 128 * 1024)
}

/// INIT at 7.46 offering no flag, 128 KiB of readahead.
pub(crate) fn init_offering_none() -> Vec<u8> {
    init_payload(46, InitFlags::empty(), 128 * 1024)
}

/// CREATE `name` (O_RDWR, mode 0644, umask 022) in the directory the request names.
pub(crate) fn create(name: &str) -> Vec<u8> {
    let create = CreateIn {
        flags: 2.into(), // O_RDWR
        mode: 0o100_644.into(),
        umask: 0o022.into(),
        open_flags: 0.into(),
    };
    let mut args = create.as_bytes().to_vec();
    args.extend_from_slice(self::name(name).as_slice());
    args
}

/// The body of a CREATE reply: the new entry and the open handle.
pub(crate) fn created(body: &[u8]) -> (EntryOut, OpenOut) {
    let (entry, rest) = EntryOut::read_from_prefix(body).unwrap();
    (entry, OpenOut::read_from_prefix(rest).unwrap().0)
}

/// A lock on the whole file for `owner`: `typ` [`WR`] takes a write lock, [`UN`] unlocks.
pub(crate) fn lock(fh: u64, owner: u64, typ: u32) -> Vec<u8> {
    LkIn {
        fh: fh.into(),
        owner: owner.into(),
        lk: FileLock {
            start: 0.into(),
            end: u64::MAX.into(),
            typ: typ.into(),
            pid: 1.into(),
        },
        ..LkIn::default()
    }
    .as_bytes()
    .to_vec()
}
