//! The arguments of the [`FileSystem`](super::FileSystem) operations that carry more than a
//! few fields, one struct per request, decoded by the server from the wire.
//!
//! Every struct is `#[non_exhaustive]`: a field a later FUSE minor adds becomes a new field
//! (and a new `with_*` setter) here, not a new parameter of a trait method, so it breaks no
//! backend. Outside this crate (a backend's own tests, fuzzing) they are built with `new`,
//! which takes the fields every request carries, and `with_*` setters for the rest, whose
//! defaults are what the server passes when the kernel did not set them (no lock owner, no
//! flags).

use std::ffi::CStr;

use fuse_abi::{IoctlFlags, OpenInFlags, SetxattrFlags, WriteFlags};

use crate::types::{Handle, Lock, LockOwner, Name, NodeId};

/// The open part of OPEN, CREATE and TMPFILE.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OpenArgs {
    /// The guest's open(2) flags, Linux values (for OPEN, O_CREAT, O_EXCL and O_NOCTTY are
    /// already removed by the kernel).
    pub flags: u32,
    /// FUSE_OPEN_* flags (KILL_SUIDGID).
    pub open_flags: OpenInFlags,
}

impl OpenArgs {
    /// Open(2) flags `flags`, no FUSE_OPEN_* flags.
    #[must_use]
    pub fn new(flags: u32) -> OpenArgs {
        OpenArgs {
            flags,
            open_flags: OpenInFlags::empty(),
        }
    }

    /// Sets [`open_flags`](Self::open_flags).
    #[must_use]
    pub fn with_open_flags(mut self, open_flags: OpenInFlags) -> OpenArgs {
        self.open_flags = open_flags;
        self
    }
}

/// CREATE: the name to create and open, its mode and the open flags.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CreateArgs<'a> {
    /// The name, in the parent directory.
    pub name: Name<'a>,
    /// Linux `S_IF*` type and permission bits of the new file (the umask is in the
    /// [`CreateContext`](crate::CreateContext)).
    pub mode: u32,
    /// The open flags, O_CREAT and O_EXCL included.
    pub open: OpenArgs,
}

impl<'a> CreateArgs<'a> {
    /// Creates `name` with `mode` and opens it as `open` says.
    #[must_use]
    pub fn new(name: Name<'a>, mode: u32, open: OpenArgs) -> CreateArgs<'a> {
        CreateArgs { name, mode, open }
    }
}

/// TMPFILE: CREATE without a name.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TmpfileArgs {
    /// Linux `S_IF*` type and permission bits of the new file.
    pub mode: u32,
    /// The open flags.
    pub open: OpenArgs,
}

impl TmpfileArgs {
    /// An unnamed file with `mode`, opened as `open` says.
    #[must_use]
    pub fn new(mode: u32, open: OpenArgs) -> TmpfileArgs {
        TmpfileArgs { mode, open }
    }
}

/// READ: which bytes of which handle.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReadArgs {
    /// The handle read from.
    pub fh: Handle,
    /// The file offset of the first byte.
    pub offset: u64,
    /// The most bytes to read.
    pub size: u32,
    /// The lock owner, set when the kernel names one (READ_LOCKOWNER, mandatory locking).
    pub lock_owner: Option<LockOwner>,
    /// The handle's open(2) flags, Linux values.
    pub flags: u32,
}

impl ReadArgs {
    /// Up to `size` bytes at `offset` of `fh`; no lock owner, no flags.
    #[must_use]
    pub fn new(fh: Handle, offset: u64, size: u32) -> ReadArgs {
        ReadArgs {
            fh,
            offset,
            size,
            lock_owner: None,
            flags: 0,
        }
    }

    /// Sets [`lock_owner`](Self::lock_owner).
    #[must_use]
    pub fn with_lock_owner(mut self, owner: LockOwner) -> ReadArgs {
        self.lock_owner = Some(owner);
        self
    }

    /// Sets [`flags`](Self::flags).
    #[must_use]
    pub fn with_flags(mut self, flags: u32) -> ReadArgs {
        self.flags = flags;
        self
    }
}

/// WRITE: where the bytes go and how they came.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WriteArgs {
    /// The handle written to.
    pub fh: Handle,
    /// The file offset of the first byte.
    pub offset: u64,
    /// The bytes to write; the request carries exactly this many.
    pub size: u32,
    /// The lock owner, set when `write_flags` has WRITE_LOCKOWNER.
    pub lock_owner: Option<LockOwner>,
    /// WRITE_CACHE (a writeback page flush, whose caller is not the writer),
    /// WRITE_LOCKOWNER and WRITE_KILL_SUIDGID (clear set-id bits).
    pub write_flags: WriteFlags,
    /// The handle's open(2) flags, Linux values.
    pub flags: u32,
}

impl WriteArgs {
    /// `size` bytes at `offset` of `fh`; no lock owner, no flags.
    #[must_use]
    pub fn new(fh: Handle, offset: u64, size: u32) -> WriteArgs {
        WriteArgs {
            fh,
            offset,
            size,
            lock_owner: None,
            write_flags: WriteFlags::empty(),
            flags: 0,
        }
    }

    /// Sets [`lock_owner`](Self::lock_owner) (the server sets it with WRITE_LOCKOWNER).
    #[must_use]
    pub fn with_lock_owner(mut self, owner: LockOwner) -> WriteArgs {
        self.lock_owner = Some(owner);
        self
    }

    /// Sets [`write_flags`](Self::write_flags).
    #[must_use]
    pub fn with_write_flags(mut self, write_flags: WriteFlags) -> WriteArgs {
        self.write_flags = write_flags;
        self
    }

    /// Sets [`flags`](Self::flags).
    #[must_use]
    pub fn with_flags(mut self, flags: u32) -> WriteArgs {
        self.flags = flags;
        self
    }
}

/// RELEASE: the handle to drop and what to do on the way.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReleaseArgs {
    /// The handle to drop.
    pub fh: Handle,
    /// The handle's open(2) flags, Linux values.
    pub flags: u32,
    /// FUSE_RELEASE_FLUSH: do the FLUSH work as part of the release (drop `lock_owner`'s
    /// POSIX locks).
    pub flush: bool,
    /// FUSE_RELEASE_FLOCK_UNLOCK (with FLOCK_LOCKS): the handle holds a flock(2) lock,
    /// which the release must drop.
    pub flock_release: bool,
    /// The owner for either, `Some` exactly when one of them is set.
    pub lock_owner: Option<LockOwner>,
}

impl ReleaseArgs {
    /// Drops `fh`: no flags, no flush, no flock release.
    #[must_use]
    pub fn new(fh: Handle) -> ReleaseArgs {
        ReleaseArgs {
            fh,
            flags: 0,
            flush: false,
            flock_release: false,
            lock_owner: None,
        }
    }

    /// Sets [`flags`](Self::flags).
    #[must_use]
    pub fn with_flags(mut self, flags: u32) -> ReleaseArgs {
        self.flags = flags;
        self
    }

    /// Asks for a flush on behalf of `owner`: sets [`flush`](Self::flush) and
    /// [`lock_owner`](Self::lock_owner).
    #[must_use]
    pub fn with_flush(mut self, owner: LockOwner) -> ReleaseArgs {
        self.flush = true;
        self.lock_owner = Some(owner);
        self
    }

    /// Asks to drop the handle's flock(2) lock, taken by `owner`: sets
    /// [`flock_release`](Self::flock_release) and [`lock_owner`](Self::lock_owner).
    #[must_use]
    pub fn with_flock_release(mut self, owner: LockOwner) -> ReleaseArgs {
        self.flock_release = true;
        self.lock_owner = Some(owner);
        self
    }
}

/// SETXATTR: the attribute, its value and the conditions.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SetxattrArgs<'a> {
    /// The attribute name (non-empty, at most `XATTR_NAME_MAX` bytes).
    pub name: &'a CStr,
    /// The value.
    pub value: &'a [u8],
    /// Linux XATTR_CREATE (1) / XATTR_REPLACE (2).
    pub flags: u32,
    /// SETXATTR_EXT's flags (ACL_KILL_SGID); empty without SETXATTR_EXT.
    pub setxattr_flags: SetxattrFlags,
}

impl<'a> SetxattrArgs<'a> {
    /// Sets `name` to `value` whether or not it exists; no SETXATTR_EXT flags.
    #[must_use]
    pub fn new(name: &'a CStr, value: &'a [u8]) -> SetxattrArgs<'a> {
        SetxattrArgs {
            name,
            value,
            flags: 0,
            setxattr_flags: SetxattrFlags::empty(),
        }
    }

    /// Sets [`flags`](Self::flags).
    #[must_use]
    pub fn with_flags(mut self, flags: u32) -> SetxattrArgs<'a> {
        self.flags = flags;
        self
    }

    /// Sets [`setxattr_flags`](Self::setxattr_flags).
    #[must_use]
    pub fn with_setxattr_flags(mut self, setxattr_flags: SetxattrFlags) -> SetxattrArgs<'a> {
        self.setxattr_flags = setxattr_flags;
        self
    }
}

/// GETLK, SETLK and SETLKW: a lock through a handle.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LockArgs {
    /// The handle the lock goes through.
    pub fh: Handle,
    /// The lock owner (the guest's file table).
    pub owner: LockOwner,
    /// The range and type, Linux values.
    pub lock: Lock,
    /// SETLKW: wait for a conflicting lock to go; `false` for SETLK and GETLK.
    pub sleep: bool,
    /// FUSE_LK_FLOCK on SETLK/SETLKW: a BSD flock(2) request (FLOCK_LOCKS), whose lock
    /// belongs to the handle rather than the owner; `false` for GETLK.
    pub flock: bool,
}

impl LockArgs {
    /// A POSIX `lock` for `owner` through `fh`, not waiting.
    #[must_use]
    pub fn new(fh: Handle, owner: LockOwner, lock: Lock) -> LockArgs {
        LockArgs {
            fh,
            owner,
            lock,
            sleep: false,
            flock: false,
        }
    }

    /// Sets [`sleep`](Self::sleep).
    #[must_use]
    pub fn with_sleep(mut self, sleep: bool) -> LockArgs {
        self.sleep = sleep;
        self
    }

    /// Sets [`flock`](Self::flock).
    #[must_use]
    pub fn with_flock(mut self, flock: bool) -> LockArgs {
        self.flock = flock;
        self
    }
}

/// IOCTL: a restricted ioctl on a handle (the reply buffer is a separate parameter).
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IoctlArgs<'a> {
    /// The handle.
    pub fh: Handle,
    /// The ioctl command, Linux encoding.
    pub cmd: u32,
    /// The ioctl's argument (a guest address for pointer arguments, not host memory).
    pub arg: u64,
    /// FUSE_IOCTL_* flags (COMPAT, DIR, 32BIT, COMPAT_X32); never UNRESTRICTED, which the
    /// server refuses.
    pub flags: IoctlFlags,
    /// The request's input data.
    pub input: &'a [u8],
}

impl<'a> IoctlArgs<'a> {
    /// Command `cmd` with `arg` and `input` on `fh`; no flags.
    #[must_use]
    pub fn new(fh: Handle, cmd: u32, arg: u64, input: &'a [u8]) -> IoctlArgs<'a> {
        IoctlArgs {
            fh,
            cmd,
            arg,
            flags: IoctlFlags::empty(),
            input,
        }
    }

    /// Sets [`flags`](Self::flags).
    #[must_use]
    pub fn with_flags(mut self, flags: IoctlFlags) -> IoctlArgs<'a> {
        self.flags = flags;
        self
    }
}

/// COPY_FILE_RANGE and COPY_FILE_RANGE_64: a source range and a destination.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CopyFileRangeArgs {
    /// The source node (the request's node id).
    pub nodeid_in: NodeId,
    /// The source handle.
    pub fh_in: Handle,
    /// The source offset.
    pub off_in: u64,
    /// The destination node, possibly another one.
    pub nodeid_out: NodeId,
    /// The destination handle.
    pub fh_out: Handle,
    /// The destination offset.
    pub off_out: u64,
    /// The bytes to copy (at most `u32::MAX` for COPY_FILE_RANGE).
    pub len: u64,
    /// copy_file_range(2)'s flags, 0 today.
    pub flags: u64,
}

impl CopyFileRangeArgs {
    /// `len` bytes from `off_in` of `fh_in` (of `nodeid_in`) to `off_out` of `fh_out` (of
    /// `nodeid_out`); no flags.
    #[must_use]
    pub fn new(
        nodeid_in: NodeId,
        fh_in: Handle,
        off_in: u64,
        nodeid_out: NodeId,
        fh_out: Handle,
        off_out: u64,
        len: u64,
    ) -> CopyFileRangeArgs {
        CopyFileRangeArgs {
            nodeid_in,
            fh_in,
            off_in,
            nodeid_out,
            fh_out,
            off_out,
            len,
            flags: 0,
        }
    }

    /// Sets [`flags`](Self::flags).
    #[must_use]
    pub fn with_flags(mut self, flags: u64) -> CopyFileRangeArgs {
        self.flags = flags;
        self
    }
}

/// SETUPMAPPING (virtio-fs DAX): a file range and where in the DAX window it goes.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SetupMappingArgs {
    /// The handle whose file is mapped.
    pub fh: Handle,
    /// The file offset of the range.
    pub foffset: u64,
    /// The range's length.
    pub len: u64,
    /// [`SetupmappingFlags`](fuse_abi::SetupmappingFlags) bits: read-only or writable.
    pub flags: u64,
    /// The offset in the DAX window.
    pub moffset: u64,
}

impl SetupMappingArgs {
    /// Maps `len` bytes at `foffset` of `fh` at `moffset` of the window; no flags.
    #[must_use]
    pub fn new(fh: Handle, foffset: u64, len: u64, moffset: u64) -> SetupMappingArgs {
        SetupMappingArgs {
            fh,
            foffset,
            len,
            flags: 0,
            moffset,
        }
    }

    /// Sets [`flags`](Self::flags).
    #[must_use]
    pub fn with_flags(mut self, flags: u64) -> SetupMappingArgs {
        self.flags = flags;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn setters_set_what_they_name() {
        let owner = LockOwner(9);
        let r = ReadArgs::new(Handle(1), 2, 3)
            .with_lock_owner(owner)
            .with_flags(4);
        assert_eq!((r.fh, r.offset, r.size), (Handle(1), 2, 3));
        assert_eq!((r.lock_owner, r.flags), (Some(owner), 4));
        let w = WriteArgs::new(Handle(1), 2, 3).with_write_flags(WriteFlags::CACHE);
        assert_eq!(
            (w.lock_owner, w.write_flags, w.flags),
            (None, WriteFlags::CACHE, 0)
        );
        let rel = ReleaseArgs::new(Handle(5)).with_flock_release(owner);
        assert!(!rel.flush && rel.flock_release);
        assert_eq!(rel.lock_owner, Some(owner));
        let rel = ReleaseArgs::new(Handle(5)).with_flush(owner).with_flags(2);
        assert!(rel.flush && !rel.flock_release);
        assert_eq!((rel.lock_owner, rel.flags), (Some(owner), 2));
        let l = LockArgs::new(Handle(1), owner, Lock::default()).with_sleep(true);
        assert!(l.sleep && !l.flock);
        let c = CopyFileRangeArgs::new(NodeId(1), Handle(2), 3, NodeId(4), Handle(5), 6, 7);
        assert_eq!(
            (c.nodeid_out, c.fh_out, c.off_out, c.len, c.flags),
            (NodeId(4), Handle(5), 6, 7, 0)
        );
        let m = SetupMappingArgs::new(Handle(1), 2, 3, 4).with_flags(1);
        assert_eq!((m.foffset, m.len, m.moffset, m.flags), (2, 3, 4, 1));
    }
}
