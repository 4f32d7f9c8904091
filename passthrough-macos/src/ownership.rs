//! The override values the backend writes: for new objects (CREATE, MKDIR, MKNOD, SYMLINK),
//! for chown, and for the set-uid/set-gid clearing that `HANDLE_KILLPRIV_V2` hands to the
//! server.
//!
//! The host object gets a conservative real mode (files 0600, directories 0700); the guest's
//! view lives in the override (reference/macos.md §1.3, §1.4). Since the server, not the guest
//! kernel, creates the inode, it also applies the Linux rules of `inode_init_owner`: in a
//! set-gid directory a new object takes the directory's group, a new directory inherits the
//! set-gid bit, and a new group-executable set-gid file made by a caller outside that group
//! loses the bit (supplementary groups are unknown to the server: only the caller's gid is
//! compared).

use fuse_abi::{Errno, mode};
use fuse_server::FileAttr;

use crate::override_stat::{OverrideStat, PERMISSION_BITS};

/// The host mode of a new regular file or emulated special file.
pub const HOST_FILE_MODE: u16 = 0o600;
/// The host mode of a new directory.
pub const HOST_DIR_MODE: u16 = 0o700;

/// The group-execute bit.
const S_IXGRP: u32 = 0o010;

/// What is being created.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NewObject {
    /// CREATE: a regular file.
    File,
    /// MKDIR.
    Directory,
    /// MKNOD: `mode` carries the type (regular, device, FIFO or socket); emulated by a host
    /// regular file.
    Node,
    /// SYMLINK: a real host symlink; mode 0777.
    Symlink,
}

/// The override for a new object created by the caller `(uid, gid)` with the request's `mode`
/// and `umask` in the directory `parent` (its guest view). `EINVAL` for a MKNOD of a directory
/// or symlink type, or of no type.
pub fn for_new(
    kind: NewObject,
    request_mode: u32,
    umask: u32,
    (uid, gid): (u32, u32),
    parent: &FileAttr,
) -> Result<OverrideStat, Errno> {
    let permissions = request_mode & PERMISSION_BITS & !umask;
    let mut guest_mode = match kind {
        NewObject::File => mode::S_IFREG | permissions,
        NewObject::Directory => mode::S_IFDIR | permissions,
        NewObject::Node => {
            let typ = request_mode & mode::S_IFMT;
            if !matches!(
                typ,
                mode::S_IFREG | mode::S_IFCHR | mode::S_IFBLK | mode::S_IFIFO | mode::S_IFSOCK
            ) {
                return Err(Errno::EINVAL);
            }
            typ | permissions
        }
        NewObject::Symlink => mode::S_IFLNK | 0o777,
    };
    let mut owner_gid = gid;
    if parent.mode & mode::S_ISGID != 0 && parent.mode & mode::S_IFMT == mode::S_IFDIR {
        owner_gid = parent.gid;
        match kind {
            NewObject::Directory => guest_mode |= mode::S_ISGID,
            NewObject::Symlink => {}
            NewObject::File | NewObject::Node => {
                let sgid_exec = mode::S_ISGID | S_IXGRP;
                if guest_mode & sgid_exec == sgid_exec && uid != 0 && gid != parent.gid {
                    guest_mode &= !mode::S_ISGID;
                }
            }
        }
    }
    Ok(OverrideStat::new(uid, owner_gid, guest_mode))
}

/// Clears set-uid, and set-gid when the group may execute (a set-gid file without group
/// execute marks mandatory locking and keeps the bit), as Linux does on write, truncate and
/// chown of a non-directory.
pub const fn kill_suidgid(guest_mode: u32) -> u32 {
    let mut cleared = guest_mode & !mode::S_ISUID;
    if guest_mode & S_IXGRP != 0 {
        cleared &= !mode::S_ISGID;
    }
    cleared
}

/// The override after a chown of the object whose guest view is `attr`. `u32::MAX` (or
/// `None`) leaves an id unchanged. A non-directory also loses set-uid/set-gid
/// ([`kill_suidgid`]); a chown that changes nothing changes nothing.
pub fn chown(attr: &FileAttr, uid: Option<u32>, gid: Option<u32>) -> OverrideStat {
    let uid = uid.filter(|&uid| uid != u32::MAX);
    let gid = gid.filter(|&gid| gid != u32::MAX);
    let is_dir = attr.mode & mode::S_IFMT == mode::S_IFDIR;
    let guest_mode = if is_dir || (uid.is_none() && gid.is_none()) {
        attr.mode
    } else {
        kill_suidgid(attr.mode)
    };
    OverrideStat::new(uid.unwrap_or(attr.uid), gid.unwrap_or(attr.gid), guest_mode)
}

/// The override after a chmod to `new_mode` (permission bits only; the type is kept).
pub fn chmod(attr: &FileAttr, new_mode: u32) -> OverrideStat {
    OverrideStat::new(
        attr.uid,
        attr.gid,
        (attr.mode & mode::S_IFMT) | (new_mode & PERMISSION_BITS),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const REG: u32 = mode::S_IFREG;
    const DIR: u32 = mode::S_IFDIR;

    fn dir(mode: u32, uid: u32, gid: u32) -> FileAttr {
        FileAttr {
            mode: DIR | mode,
            uid,
            gid,
            ..FileAttr::default()
        }
    }

    #[test]
    fn plain_creation() {
        let parent = dir(0o755, 0, 0);
        let ctx = (1000, 100);
        assert_eq!(
            for_new(NewObject::File, 0o666, 0o022, ctx, &parent),
            Ok(OverrideStat::new(1000, 100, REG | 0o644))
        );
        assert_eq!(
            for_new(NewObject::Directory, 0o777, 0o022, ctx, &parent),
            Ok(OverrideStat::new(1000, 100, DIR | 0o755))
        );
        assert_eq!(
            for_new(NewObject::Symlink, 0, 0o077, ctx, &parent),
            Ok(OverrideStat::new(1000, 100, mode::S_IFLNK | 0o777))
        );
        assert_eq!(
            for_new(NewObject::Node, mode::S_IFCHR | 0o666, 0o002, ctx, &parent),
            Ok(OverrideStat::new(1000, 100, mode::S_IFCHR | 0o664))
        );
        assert_eq!(
            for_new(NewObject::Node, mode::S_IFIFO | 0o644, 0, ctx, &parent),
            Ok(OverrideStat::new(1000, 100, mode::S_IFIFO | 0o644))
        );
        // The request's type bits never leak into a file or a directory.
        assert_eq!(
            for_new(NewObject::File, mode::S_IFCHR | 0o600, 0, ctx, &parent),
            Ok(OverrideStat::new(1000, 100, REG | 0o600))
        );
    }

    #[test]
    fn mknod_types() {
        let parent = dir(0o755, 0, 0);
        for bad in [0, DIR, mode::S_IFLNK, 0o160_000] {
            assert_eq!(
                for_new(NewObject::Node, bad | 0o644, 0, (0, 0), &parent),
                Err(Errno::EINVAL),
                "{bad:o}"
            );
        }
        assert!(for_new(NewObject::Node, REG | 0o644, 0, (0, 0), &parent).is_ok());
        assert!(for_new(NewObject::Node, mode::S_IFSOCK | 0o644, 0, (0, 0), &parent).is_ok());
        assert!(for_new(NewObject::Node, mode::S_IFBLK | 0o644, 0, (0, 0), &parent).is_ok());
    }

    #[test]
    fn setgid_directories() {
        let parent = dir(0o2775, 0, 50);
        // A new file takes the directory's group.
        assert_eq!(
            for_new(NewObject::File, 0o644, 0, (1000, 100), &parent),
            Ok(OverrideStat::new(1000, 50, REG | 0o644))
        );
        // A new directory also inherits set-gid.
        assert_eq!(
            for_new(NewObject::Directory, 0o755, 0, (1000, 100), &parent),
            Ok(OverrideStat::new(1000, 50, DIR | 0o2755))
        );
        // A set-gid, group-executable file by an outsider loses set-gid...
        assert_eq!(
            for_new(NewObject::File, 0o2755, 0, (1000, 100), &parent),
            Ok(OverrideStat::new(1000, 50, REG | 0o755))
        );
        // ...but not for a member of the group, nor for root, nor without group execute.
        assert_eq!(
            for_new(NewObject::File, 0o2755, 0, (1000, 50), &parent),
            Ok(OverrideStat::new(1000, 50, REG | 0o2755))
        );
        assert_eq!(
            for_new(NewObject::File, 0o2755, 0, (0, 0), &parent),
            Ok(OverrideStat::new(0, 50, REG | 0o2755))
        );
        assert_eq!(
            for_new(NewObject::File, 0o2644, 0, (1000, 100), &parent),
            Ok(OverrideStat::new(1000, 50, REG | 0o2644))
        );
        // Without set-gid on the parent: the caller's group.
        assert_eq!(
            for_new(NewObject::File, 0o2755, 0, (1000, 100), &dir(0o775, 0, 50)),
            Ok(OverrideStat::new(1000, 100, REG | 0o2755))
        );
    }

    #[test]
    fn killing_privileges() {
        assert_eq!(kill_suidgid(REG | 0o6755), REG | 0o755);
        assert_eq!(kill_suidgid(REG | 0o4755), REG | 0o755);
        // Set-gid without group execute stays.
        assert_eq!(kill_suidgid(REG | 0o6745), REG | 0o2745);
        assert_eq!(kill_suidgid(REG | 0o644), REG | 0o644);
        assert_eq!(kill_suidgid(REG | 0o1777), REG | 0o1777);
    }

    #[test]
    fn chown_and_chmod() {
        let file = FileAttr {
            mode: REG | 0o6755,
            uid: 1000,
            gid: 100,
            ..FileAttr::default()
        };
        assert_eq!(
            chown(&file, Some(0), None),
            OverrideStat::new(0, 100, REG | 0o755)
        );
        assert_eq!(
            chown(&file, Some(u32::MAX), Some(5)),
            OverrideStat::new(1000, 5, REG | 0o755)
        );
        // Nothing to change: nothing changes.
        assert_eq!(
            chown(&file, Some(u32::MAX), None),
            OverrideStat::new(1000, 100, REG | 0o6755)
        );
        // Directories keep their bits.
        let d = dir(0o2775, 1000, 100);
        assert_eq!(
            chown(&d, Some(0), Some(0)),
            OverrideStat::new(0, 0, DIR | 0o2775)
        );
        assert_eq!(
            chmod(&file, mode::S_IFCHR | 0o600),
            OverrideStat::new(1000, 100, REG | 0o600)
        );
        assert_eq!(
            chmod(&d, 0o1777),
            OverrideStat::new(1000, 100, DIR | 0o1777)
        );
    }

    #[test]
    fn host_modes_are_conservative() {
        assert_eq!(HOST_FILE_MODE, 0o600);
        assert_eq!(HOST_DIR_MODE, 0o700);
    }
}
