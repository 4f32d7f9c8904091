//! ACCESS and permission checks against the guest's view of an inode.
//!
//! The host's own permission checks see the host owner (the user running the server) and the
//! conservative host modes; the guest's ownership and mode live in the override. So the
//! server decides ACCESS itself, from the attributes it would send to the guest
//! (reference/macos.md §1.3): owner bits if the caller's uid owns the file, else group bits if
//! its gid matches, else the other bits. Root may read and write anything, and execute (search)
//! anything that is a directory or has at least one execute bit. Supplementary groups are not
//! known to the server (FUSE does not carry them), so a caller that would pass only through a
//! supplementary group is refused; with `default_permissions` the guest kernel does the full
//! check itself before asking.

use fuse_abi::{Errno, mode};
use fuse_server::FileAttr;

/// ACCESS mask bits (the same values on Linux and Darwin).
pub mod mask {
    /// Existence only.
    pub const F_OK: u32 = 0;
    /// Execute (search).
    pub const X_OK: u32 = 1;
    /// Write.
    pub const W_OK: u32 = 2;
    /// Read.
    pub const R_OK: u32 = 4;
}

/// Checks `mask` for the caller `(uid, gid)` against the guest-visible `attr`. `EACCES` if
/// denied, `EINVAL` for bits other than `R_OK | W_OK | X_OK`.
pub const fn check(attr: &FileAttr, uid: u32, gid: u32, wanted: u32) -> Result<(), Errno> {
    let all = mask::R_OK | mask::W_OK | mask::X_OK;
    if wanted & !all != 0 {
        return Err(Errno::EINVAL);
    }
    if wanted == mask::F_OK {
        return Ok(());
    }
    if uid == 0 {
        let is_dir = attr.mode & mode::S_IFMT == mode::S_IFDIR;
        let any_exec = attr.mode & 0o111 != 0;
        return if wanted & mask::X_OK == 0 || is_dir || any_exec {
            Ok(())
        } else {
            Err(Errno::EACCES)
        };
    }
    let bits = if uid == attr.uid {
        (attr.mode >> 6) & 7
    } else if gid == attr.gid {
        (attr.mode >> 3) & 7
    } else {
        attr.mode & 7
    };
    if bits & wanted == wanted {
        Ok(())
    } else {
        Err(Errno::EACCES)
    }
}

/// Compile-time check of the mask values against `libc` (the same values on every Unix).
const _: () = {
    assert!(mask::F_OK == libc::F_OK.unsigned_abs());
    assert!(mask::X_OK == libc::X_OK.unsigned_abs());
    assert!(mask::W_OK == libc::W_OK.unsigned_abs());
    assert!(mask::R_OK == libc::R_OK.unsigned_abs());
};

#[cfg(test)]
mod tests {
    use super::mask::*;
    use super::*;

    fn attr(mode: u32, uid: u32, gid: u32) -> FileAttr {
        FileAttr {
            mode,
            uid,
            gid,
            ..FileAttr::default()
        }
    }

    #[test]
    fn classes() {
        let file = attr(mode::S_IFREG | 0o640, 1000, 100);
        // Owner: rw-.
        assert_eq!(check(&file, 1000, 5, R_OK | W_OK), Ok(()));
        assert_eq!(check(&file, 1000, 5, X_OK), Err(Errno::EACCES));
        // Group: r--.
        assert_eq!(check(&file, 2000, 100, R_OK), Ok(()));
        assert_eq!(check(&file, 2000, 100, W_OK), Err(Errno::EACCES));
        // Other: ---.
        assert_eq!(check(&file, 2000, 200, R_OK), Err(Errno::EACCES));
        // Existence only.
        assert_eq!(check(&file, 2000, 200, F_OK), Ok(()));
    }

    #[test]
    fn owner_bits_win_over_group_bits() {
        // ---rwx---: the owner is refused even though its group could.
        let file = attr(mode::S_IFREG | 0o070, 1000, 100);
        assert_eq!(check(&file, 1000, 100, R_OK), Err(Errno::EACCES));
        assert_eq!(check(&file, 1001, 100, R_OK | W_OK | X_OK), Ok(()));
    }

    #[test]
    fn root() {
        let file = attr(mode::S_IFREG, 1000, 100);
        assert_eq!(check(&file, 0, 0, R_OK | W_OK), Ok(()));
        assert_eq!(check(&file, 0, 0, X_OK), Err(Errno::EACCES));
        let exec = attr(mode::S_IFREG | 0o001, 1000, 100);
        assert_eq!(check(&exec, 0, 0, X_OK | R_OK), Ok(()));
        let dir = attr(mode::S_IFDIR, 1000, 100);
        assert_eq!(check(&dir, 0, 0, X_OK | W_OK), Ok(()));
    }

    #[test]
    fn invalid_mask() {
        let file = attr(mode::S_IFREG | 0o777, 0, 0);
        assert_eq!(check(&file, 0, 0, 8), Err(Errno::EINVAL));
        assert_eq!(check(&file, 5, 5, 0x10 | R_OK), Err(Errno::EINVAL));
    }
}
